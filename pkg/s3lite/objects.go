package s3lite

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// expectContinueMin is the body size from which a PUT waits for S3's
// "100 Continue" before sending the body, as the SDK does: a refused
// conditional write then costs no upload.
const expectContinueMin = 2 << 20

func opError(op string, err error) error {
	return &smithy.OperationError{ServiceID: serviceID, OperationName: op, Err: err}
}

// PutObject stores in.Body under in.Key.
//
// It sends Bucket, Key, Body, ContentLength, ContentType, CacheControl,
// ContentDisposition, ContentEncoding, ContentMD5, IfMatch, IfNoneMatch,
// Metadata, ServerSideEncryption, SSEKMSKeyId, BucketKeyEnabled,
// StorageClass, Tagging, ExpectedBucketOwner, ChecksumAlgorithm and
// ChecksumSHA256; other fields are ignored. SHA256 is the only checksum
// algorithm supported: with ChecksumAlgorithm SHA256 and no ChecksumSHA256
// the checksum is computed.
//
// Body must be an io.ReadSeeker (*bytes.Reader, *strings.Reader,
// *os.File), read from its current position to its end, so that its length
// is known and a retry can resend it. When ChecksumSHA256 is given it also
// serves as the payload hash that SigV4 signs, so the body is not read an
// extra time; otherwise the body is hashed once before sending. Either way
// S3 rejects a body that does not match.
//
// The output holds ETag, VersionId, ServerSideEncryption, SSEKMSKeyId,
// BucketKeyEnabled, ChecksumSHA256, ChecksumType and Expiration.
func (c *Client) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	const op = "PutObject"
	if in == nil || aws.ToString(in.Key) == "" {
		return nil, opError(op, errors.New("missing required field Key"))
	}
	r := &request{op: op, method: http.MethodPut, bucket: aws.ToString(in.Bucket), key: aws.ToString(in.Key), header: http.Header{}}
	if in.Body != nil {
		rs, ok := in.Body.(io.ReadSeeker)
		if !ok {
			return nil, opError(op, fmt.Errorf("body must be an io.ReadSeeker such as *bytes.Reader, got %T", in.Body))
		}
		start, err := rs.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, opError(op, fmt.Errorf("seek body: %w", err))
		}
		end, err := rs.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, opError(op, fmt.Errorf("seek body: %w", err))
		}
		if _, err := rs.Seek(start, io.SeekStart); err != nil {
			return nil, opError(op, fmt.Errorf("seek body: %w", err))
		}
		r.body, r.bodyStart, r.length = rs, start, end-start
	}
	if in.ContentLength != nil && *in.ContentLength != r.length {
		return nil, opError(op, fmt.Errorf("ContentLength %d differs from the body's %d bytes", *in.ContentLength, r.length))
	}

	if err := putChecksum(r, in); err != nil {
		return nil, opError(op, err)
	}
	h := r.header
	setHeader(h, "Content-Type", in.ContentType)
	setHeader(h, "Cache-Control", in.CacheControl)
	setHeader(h, "Content-Disposition", in.ContentDisposition)
	setHeader(h, "Content-Encoding", in.ContentEncoding)
	setHeader(h, "Content-Md5", in.ContentMD5)
	setHeader(h, "If-Match", in.IfMatch)
	setHeader(h, "If-None-Match", in.IfNoneMatch)
	setHeader(h, "X-Amz-Server-Side-Encryption", nilIfEmpty(string(in.ServerSideEncryption)))
	setHeader(h, "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id", in.SSEKMSKeyId)
	if in.BucketKeyEnabled != nil {
		h.Set("X-Amz-Server-Side-Encryption-Bucket-Key-Enabled", strconv.FormatBool(*in.BucketKeyEnabled))
	}
	setHeader(h, "X-Amz-Storage-Class", nilIfEmpty(string(in.StorageClass)))
	setHeader(h, "X-Amz-Tagging", in.Tagging)
	setHeader(h, "X-Amz-Expected-Bucket-Owner", in.ExpectedBucketOwner)
	for k, v := range in.Metadata {
		h.Set("X-Amz-Meta-"+k, v)
	}
	if r.length >= expectContinueMin {
		h.Set("Expect", "100-continue")
	}

	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	// S3 answers a PUT with no body; reading to EOF lets the connection
	// be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes))
	resp.Body.Close()
	rh := resp.Header
	return &s3.PutObjectOutput{
		ETag:                 headerPtr(rh, "Etag"),
		VersionId:            headerPtr(rh, "X-Amz-Version-Id"),
		Expiration:           headerPtr(rh, "X-Amz-Expiration"),
		ServerSideEncryption: types.ServerSideEncryption(rh.Get("X-Amz-Server-Side-Encryption")),
		SSEKMSKeyId:          headerPtr(rh, "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"),
		BucketKeyEnabled:     headerBool(rh, "X-Amz-Server-Side-Encryption-Bucket-Key-Enabled"),
		ChecksumSHA256:       headerPtr(rh, "X-Amz-Checksum-Sha256"),
		ChecksumType:         types.ChecksumType(rh.Get("X-Amz-Checksum-Type")),
	}, nil
}

// putChecksum sets the payload hash of r and the checksum headers asked
// for by in.
func putChecksum(r *request, in *s3.PutObjectInput) error {
	if a := in.ChecksumAlgorithm; a != "" && a != types.ChecksumAlgorithmSha256 {
		return fmt.Errorf("checksum algorithm %q not supported, only SHA256", a)
	}
	sum64 := aws.ToString(in.ChecksumSHA256)
	switch {
	case sum64 != "":
		sum, err := base64.StdEncoding.DecodeString(sum64)
		if err != nil || len(sum) != sha256.Size {
			return errors.New("ChecksumSHA256 is not a base64 SHA-256")
		}
		r.payloadHash = hex.EncodeToString(sum)
	case r.body != nil:
		hash, err := hashSeeker(r.body, r.bodyStart, r.length)
		if err != nil {
			return err
		}
		r.payloadHash = hash
	default:
		r.payloadHash = emptySHA256
	}
	if sum64 == "" && in.ChecksumAlgorithm == "" {
		return nil
	}
	if sum64 == "" {
		sum, _ := hex.DecodeString(r.payloadHash)
		sum64 = base64.StdEncoding.EncodeToString(sum)
	}
	r.header.Set("X-Amz-Checksum-Sha256", sum64)
	r.header.Set("X-Amz-Sdk-Checksum-Algorithm", string(types.ChecksumAlgorithmSha256))
	return nil
}

// GetObject returns the object under in.Key. The caller closes the
// output's Body.
//
// It sends Bucket, Key, VersionId, Range, IfMatch, IfNoneMatch,
// ChecksumMode and ExpectedBucketOwner; other fields are ignored. With
// ChecksumMode ENABLED and a full-object SHA-256, CRC32 or CRC32C stored
// with the object, reading Body to its end fails with ErrChecksumMismatch
// when the bytes do not match it.
//
// A missing key fails with an *APIError whose code is NoSuchKey, status
// 404, which also matches *types.NoSuchKey with errors.As.
//
// The output holds Body, ContentLength, ContentType, ContentEncoding,
// ContentRange, CacheControl, ETag, LastModified, Metadata (keys in lower
// case, as the SDK returns them), VersionId, StorageClass,
// ServerSideEncryption, SSEKMSKeyId, BucketKeyEnabled, the checksums and
// ChecksumType.
func (c *Client) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	const op = "GetObject"
	if in == nil || aws.ToString(in.Key) == "" {
		return nil, opError(op, errors.New("missing required field Key"))
	}
	r := &request{op: op, method: http.MethodGet, bucket: aws.ToString(in.Bucket), key: aws.ToString(in.Key), header: http.Header{}}
	if v := aws.ToString(in.VersionId); v != "" {
		r.query = url.Values{"versionId": {v}}
	}
	setHeader(r.header, "Range", in.Range)
	setHeader(r.header, "If-Match", in.IfMatch)
	setHeader(r.header, "If-None-Match", in.IfNoneMatch)
	setHeader(r.header, "X-Amz-Expected-Bucket-Owner", in.ExpectedBucketOwner)
	validate := in.ChecksumMode == types.ChecksumModeEnabled
	if validate {
		r.header.Set("X-Amz-Checksum-Mode", string(types.ChecksumModeEnabled))
	}

	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	rh := resp.Header
	out := &s3.GetObjectOutput{
		Body:                 resp.Body,
		ContentType:          headerPtr(rh, "Content-Type"),
		ContentEncoding:      headerPtr(rh, "Content-Encoding"),
		ContentRange:         headerPtr(rh, "Content-Range"),
		CacheControl:         headerPtr(rh, "Cache-Control"),
		AcceptRanges:         headerPtr(rh, "Accept-Ranges"),
		ETag:                 headerPtr(rh, "Etag"),
		VersionId:            headerPtr(rh, "X-Amz-Version-Id"),
		StorageClass:         types.StorageClass(rh.Get("X-Amz-Storage-Class")),
		ServerSideEncryption: types.ServerSideEncryption(rh.Get("X-Amz-Server-Side-Encryption")),
		SSEKMSKeyId:          headerPtr(rh, "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"),
		BucketKeyEnabled:     headerBool(rh, "X-Amz-Server-Side-Encryption-Bucket-Key-Enabled"),
		ChecksumSHA256:       headerPtr(rh, "X-Amz-Checksum-Sha256"),
		ChecksumCRC32:        headerPtr(rh, "X-Amz-Checksum-Crc32"),
		ChecksumCRC32C:       headerPtr(rh, "X-Amz-Checksum-Crc32c"),
		ChecksumType:         types.ChecksumType(rh.Get("X-Amz-Checksum-Type")),
	}
	if resp.ContentLength >= 0 {
		out.ContentLength = aws.Int64(resp.ContentLength)
	}
	if t, err := http.ParseTime(rh.Get("Last-Modified")); err == nil {
		out.LastModified = aws.Time(t.UTC())
	}
	for k, v := range rh {
		if name, ok := cutPrefixFold(k, "X-Amz-Meta-"); ok && len(v) > 0 {
			if out.Metadata == nil {
				out.Metadata = map[string]string{}
			}
			out.Metadata[strings.ToLower(name)] = v[0]
		}
	}
	if validate && resp.StatusCode == http.StatusOK && out.ChecksumType != types.ChecksumTypeComposite {
		out.Body = checkedBody(out)
	}
	return out, nil
}

func setHeader(h http.Header, name string, v *string) {
	if v != nil && *v != "" {
		h.Set(name, *v)
	}
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func headerPtr(h http.Header, name string) *string {
	if v := h.Get(name); v != "" {
		return &v
	}
	return nil
}

func headerBool(h http.Header, name string) *bool {
	if b, err := strconv.ParseBool(h.Get(name)); err == nil {
		return &b
	}
	return nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

// parseTime reads the timestamps of S3's XML documents.
func parseTime(s *string) *time.Time {
	if s == nil {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return nil
	}
	return &t
}
