package linkstore

// AttentionIndex is the sparse global secondary index of links due for
// reconciliation: hash key "attn" (the AttentionKind), range key "attnDue"
// (fixed-width UTC time), keys only.
const AttentionIndex = "attention"

// TTLAttribute holds, on event markers, the epoch second after which
// DynamoDB may delete them.
const TTLAttribute = "ttl"
