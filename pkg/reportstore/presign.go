package reportstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MaxURLLifetime bounds a presigned download URL (REPORT_URL_TTL).
const MaxURLLifetime = time.Hour

// PresignAPI is the part of *s3.PresignClient the Presigner calls.
type PresignAPI interface {
	PresignGetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error)
}

// Presigner makes time-limited GET URLs for stored reports, so that a
// report is fetched from S3 directly and never passes through a function.
// Signing is local: it costs no call.
type Presigner struct {
	client PresignAPI
	bucket string
	ttl    time.Duration
	now    func() time.Time
}

// NewPresigner returns a Presigner for bucket whose URLs live ttl (more
// than zero, at most MaxURLLifetime).
func NewPresigner(client PresignAPI, bucket string, ttl time.Duration) (*Presigner, error) {
	if ttl <= 0 || ttl > MaxURLLifetime {
		return nil, fmt.Errorf("report URL lifetime %s: must be more than 0 and at most %s", ttl, MaxURLLifetime)
	}
	return &Presigner{client: client, bucket: bucket, ttl: ttl, now: time.Now}, nil
}

// errNotReportKey: the key is outside the reports/ prefix, the only one the
// function may sign for.
var errNotReportKey = errors.New("reportstore: not a report key")

// PresignGet returns a GET URL of the object under key and when it
// expires. Only keys under the reports/ prefix are signed.
func (p *Presigner) PresignGet(ctx context.Context, key string) (string, time.Time, error) {
	if err := checkKey(key); err != nil {
		return "", time.Time{}, fmt.Errorf("presign %s: %w", key, err)
	}
	if !strings.HasPrefix(key, reportsRoot+"/") {
		return "", time.Time{}, fmt.Errorf("presign %s: %w", key, errNotReportKey)
	}
	// The signing time is the expiry's origin; take it before signing so
	// the URL never outlives the time we state.
	at := p.now()
	req, err := p.client.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &p.bucket, Key: &key},
		s3.WithPresignExpires(p.ttl))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("presign %s/%s: %w", p.bucket, key, err)
	}
	return req.URL, at.Add(p.ttl).UTC().Truncate(time.Second), nil
}
