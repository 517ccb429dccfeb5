// Package linkstoretest offers test doubles for code that uses package
// linkstore: MemoryStore, an in-memory link store with the outcomes of
// linkstore.DynamoStore; StreamRecord, the stream record a consent write
// puts on the table's stream; and CreateTable, which creates a link table in
// an emulator the way the deployment template does.
package linkstoretest
