// Package reportstore keeps Klavi product reports in S3, byte for byte as
// received, at most once per key, encrypted at rest and checked for
// integrity by S3 itself.
package reportstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

var (
	// ErrExists reports that an object with the key already exists: the
	// report was stored by an earlier delivery and nothing was written.
	ErrExists = errors.New("report already stored")
	// ErrConflict reports that another write of the same key was still in
	// progress after one retry. Whether it succeeds is unknown, so the
	// caller must fail the delivery and let the sender retry; the retry
	// then gets ErrExists or stores the report.
	ErrConflict = errors.New("concurrent write of the same report in progress")
	// ErrNotFound reports that no object has the key.
	ErrNotFound = errors.New("report not found")
)

// S3API is the part of the S3 client the store calls.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
}

// Options tune a Store. The zero value is ready to use.
type Options struct {
	// KMSKeyID selects SSE-KMS with this key (id, ARN or alias). Empty
	// selects SSE-S3 (AES256).
	KMSKeyID string
	// ListPageSize is the number of keys per ListObjectsV2 page, and so per
	// DeleteObjects batch, in DeletePrefix. 0 means S3's maximum, 1000.
	ListPageSize int32
	// ConflictRetryDelay is the wait before the one retry after a 409
	// ConditionalRequestConflict. 0 means 200ms.
	ConflictRetryDelay time.Duration
}

const (
	maxPageSize          = 1000 // S3's limit for both ListObjectsV2 and DeleteObjects
	defaultConflictDelay = 200 * time.Millisecond
)

// Store reads and writes reports in one bucket.
type Store struct {
	client S3API
	bucket string
	opts   Options
}

// New returns a Store for bucket. The client is shared, not copied.
func New(client S3API, bucket string, o Options) *Store {
	if o.ListPageSize <= 0 || o.ListPageSize > maxPageSize {
		o.ListPageSize = maxPageSize
	}
	if o.ConflictRetryDelay <= 0 {
		o.ConflictRetryDelay = defaultConflictDelay
	}
	return &Store{client: client, bucket: bucket, opts: o}
}

// Object is a report to store. Body is stored as is and never modified,
// and Put does not keep it once it returns: the report webhook reuses the
// buffer for its next delivery.
// The other fields only become object metadata; none may hold a tax id
// (a value that does is left out of the metadata).
type Object struct {
	Key             string
	Body            []byte
	RequestID       string
	ProductName     string
	ProductReportID string
	Code            string
}

// PutResult describes the bytes of a Put.
type PutResult struct {
	Key    string
	SHA256 string // hex
	Bytes  int64
}

// Put stores o.Body under o.Key unless an object with that key exists.
//
// The write is conditional (If-None-Match: *), so a duplicate delivery
// never overwrites or rewrites a stored report: it gets ErrExists, with
// PutResult describing the body it was given, not the stored one. S3
// answers a 409 ConditionalRequestConflict while another conditional write
// of the key is in flight; Put then retries once after
// Options.ConflictRetryDelay and returns ErrConflict if the conflict
// persists, never ErrExists, because the other write may yet fail.
//
// The body is sent from o.Body without a copy, with its SHA-256 for S3 to
// verify, so a report is either stored whole or not at all; that one hash
// is the only pass over the body besides sending it (see signPayload). Errors name
// the bucket and key, never body content.
func (s *Store) Put(ctx context.Context, o Object) (PutResult, error) {
	if err := checkKey(o.Key); err != nil {
		return PutResult{}, fmt.Errorf("put s3://%s/%q: %w", s.bucket, o.Key, err)
	}
	if len(o.Body) == 0 {
		return PutResult{}, fmt.Errorf("put s3://%s/%s: empty body", s.bucket, o.Key)
	}
	sum := sha256.Sum256(o.Body)
	res := PutResult{Key: o.Key, SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(o.Body))}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(o.Key),
		ContentLength: aws.Int64(res.Bytes),
		ContentType:   aws.String("application/json"),
		IfNoneMatch:   aws.String("*"),
		// The SHA-256 is owed anyway (the report record carries it), so it
		// is also the object's checksum rather than a cheaper CRC32C or
		// CRC64NVME, which would be a second pass over the body. With the
		// value given the SDK sends it instead of computing the checksum
		// its default (RequestChecksumCalculation WhenSupported) would add,
		// and S3 rejects a body that does not match.
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		Metadata:          metadata(o, res.SHA256),
	}
	if s.opts.KMSKeyID == "" {
		in.ServerSideEncryption = types.ServerSideEncryptionAes256
	} else {
		in.ServerSideEncryption = types.ServerSideEncryptionAwsKms
		in.SSEKMSKeyId = aws.String(s.opts.KMSKeyID)
		// One data key per bucket rather than per object cuts KMS calls.
		in.BucketKeyEnabled = aws.Bool(true)
	}

	err := s.put(ctx, in, o.Body, res.SHA256)
	if errors.Is(err, ErrConflict) {
		if err = wait(ctx, s.opts.ConflictRetryDelay); err == nil {
			err = s.put(ctx, in, o.Body, res.SHA256)
		}
	}
	if err != nil {
		return res, fmt.Errorf("put s3://%s/%s: %w", s.bucket, o.Key, err)
	}
	return res, nil
}

// signPayload hands SigV4 the SHA-256 Put already computed, so the SDK
// signs the body without reading it again; over TLS it would otherwise send
// UNSIGNED-PAYLOAD, and over plain HTTP (an emulator) hash the whole body a
// second time. The SDK skips its own payload hash when one is in the context
// (v4.SetPayloadHash), and computes no checksum of its own when the request
// carries one (x-amz-checksum-sha256), so the body is read once, by the HTTP
// transport.
func signPayload(sha256Hex string) func(*s3.Options) {
	mw := middleware.FinalizeMiddlewareFunc("ReportPayloadHash", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		return next.HandleFinalize(v4.SetPayloadHash(ctx, sha256Hex), in)
	})
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Finalize.Add(mw, middleware.Before)
		})
	}
}

func (s *Store) put(ctx context.Context, in *s3.PutObjectInput, body []byte, sha256Hex string) error {
	in.Body = bytes.NewReader(body)
	_, err := s.client.PutObject(ctx, in, signPayload(sha256Hex))
	switch {
	case err == nil:
		return nil
	case isAPIError(err, "PreconditionFailed", http.StatusPreconditionFailed):
		return ErrExists
	case isAPIError(err, "ConditionalRequestConflict", http.StatusConflict):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// isAPIError matches an S3 error by code or, when the code is missing (as
// for bodiless responses), by HTTP status.
func isAPIError(err error, code string, status int) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == code {
		return true
	}
	var httpErr interface{ HTTPStatusCode() int }
	return errors.As(err, &httpErr) && httpErr.HTTPStatusCode() == status
}

// Open returns the stored report under key and its length. S3 checks the
// bytes against the stored SHA-256 as they are read; a mismatch surfaces as
// a read error at the end. The caller closes the reader.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	if err := checkKey(key); err != nil {
		return nil, 0, fmt.Errorf("open s3://%s/%q: %w", s.bucket, key, err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket:       aws.String(s.bucket),
		Key:          aws.String(key),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		var noKey *types.NoSuchKey
		if errors.As(err, &noKey) || isAPIError(err, "NotFound", http.StatusNotFound) {
			err = ErrNotFound
		}
		return nil, 0, fmt.Errorf("open s3://%s/%s: %w", s.bucket, key, err)
	}
	return out.Body, aws.ToInt64(out.ContentLength), nil
}

// Delete removes one stored report. Deleting a key that does not exist is
// not an error (S3 answers the same).
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete s3://%s/%q: %w", s.bucket, key, err)
	}
	out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(s.bucket),
		Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String(key)}}, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("delete s3://%s/%s: %w", s.bucket, key, err)
	}
	if len(out.Errors) > 0 {
		return fmt.Errorf("delete s3://%s/%s: %s", s.bucket, key, aws.ToString(out.Errors[0].Code))
	}
	return nil
}

// DeletePrefix deletes every object under prefix, for the LGPD purge of a
// link (LinkPrefix), and returns how many it deleted. It lists a page and
// deletes that page with one DeleteObjects call (at most 1000 keys) before
// listing the next. prefix must end in "/" and name at least one level
// below "reports/" or "unmatched/", so a purge can never empty the bucket.
//
// On a versioned bucket this leaves delete markers and noncurrent
// versions; the bucket is meant to be unversioned, or to expire
// noncurrent versions by lifecycle rule.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	if err := checkPrefix(prefix); err != nil {
		return 0, fmt.Errorf("delete s3://%s/%q: %w", s.bucket, prefix, err)
	}
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(prefix),
		MaxKeys: aws.Int32(s.opts.ListPageSize),
	})
	deleted := 0
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return deleted, fmt.Errorf("list s3://%s/%s: %w", s.bucket, prefix, err)
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, len(page.Contents))
		for i, obj := range page.Contents {
			ids[i] = types.ObjectIdentifier{Key: obj.Key}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return deleted, fmt.Errorf("delete s3://%s/%s: %w", s.bucket, prefix, err)
		}
		deleted += len(ids) - len(out.Errors)
		if len(out.Errors) > 0 {
			first := out.Errors[0]
			return deleted, fmt.Errorf("delete s3://%s/%s: %d of %d objects not deleted, first %s: %s",
				s.bucket, prefix, len(out.Errors), len(ids), aws.ToString(first.Key), aws.ToString(first.Code))
		}
	}
	return deleted, nil
}
