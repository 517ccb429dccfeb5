// Package integrationevents tells the fintech's own systems (a credit
// engine, a CRM, a data lake) what happened to their links, as Amazon
// EventBridge events, so that they learn it without polling.
//
// The events come from the links table's DynamoDB stream (NEW_AND_OLD_IMAGES),
// never from inside a webhook's answer: a slow or failing bus then costs
// Klavi no retry. Map reads one stream record:
//
//	record                                        detail-type
//	consent item inserted, or its status changed  Consent Status Changed
//	report request item inserted                  Report Requested
//	report item inserted                          Report Stored
//	link item that just got purgedAt              Link Data Purged
//
// Everything else (event markers, the lease and request id a consent gets
// on its way to a report request, the deletions a purge makes, expiries) is
// no event. A report delivered twice is stored once (a conditional write),
// so its stream record, and its Report Stored event, exist once.
//
// # Event ids
//
// Every detail carries an eventId derived from the change itself, never
// from the stream record or the clock: a hash of the item's key and what
// changed (a consent's new status and event time, a purge's time). A
// record retried by the stream, or the same change seen twice, gives the
// same id; consumers dedupe on it.
//
// # Delivery
//
// Publisher.Handle publishes a batch of stream records in their order, in
// PutEvents calls of at most 10 entries and 256 KB, never two entries of
// one link in the same call (EventBridge does not order the entries of one
// call). At the first entry that fails (an error of the call, or an entry
// in FailedEntryCount), it stops: that record and every later one of the
// batch are returned in BatchItemFailures. Lambda resumes the shard from
// the lowest sequence number reported, so every later record comes back
// anyway, and a link's changes keep their order. Delivery is therefore at
// least once: an entry accepted in the same call after the failed one is
// sent again with the retry, with the same eventId.
//
// # Personal data
//
// The tax id, the user's e-mail and phone, tokens and report content are
// never read from the records (the link item's tax id is dropped when it is
// decoded), so no event can carry them. externalInfo is the object the
// fintech passed to POST /links (or Klavi echoed), for correlation. It is
// taken from the link item's images in the same batch (every write of a
// part touches the link item in its transaction), else read from the
// table; a link purged before a record of it is published has none left
// to read, and its event then carries "externalInfo": null.
package integrationevents
