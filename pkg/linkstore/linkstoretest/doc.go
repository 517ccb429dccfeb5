// Package linkstoretest offers test doubles for code that uses package
// linkstore: MemoryStore, an in-memory link store with the outcomes of
// linkstore.DynamoStore, and CreateTable, which creates a link table in an
// emulator the way the deployment template does.
package linkstoretest
