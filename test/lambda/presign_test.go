package lambda_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

// fetch GETs u with a plain HTTP client, as a consumer holding a download
// URL does, and returns the status and body.
func fetch(t *testing.T, u string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET download URL: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read download: %v", err)
	}
	return resp.StatusCode, b
}

// resign signs a GET of key in the URL's bucket again with the emulator's
// credentials, at the URL's own X-Amz-Date and with expires, and returns
// the signature: what S3 compares the URL's X-Amz-Signature with.
func resign(t *testing.T, u *url.URL, key string, expires string) string {
	t.Helper()
	q := u.Query()
	at, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		t.Fatalf("X-Amz-Date %q: %v", q.Get("X-Amz-Date"), err)
	}
	bucketPath, _, _ := bytes.Cut([]byte(u.Path[1:]), []byte("/"))
	target := *u
	target.Path = "/" + string(bucketPath) + "/" + key
	target.RawPath = ""
	// The signer adds the X-Amz-Algorithm, -Credential, -Date,
	// -SignedHeaders and -Signature parameters itself; every other one is
	// signed as it is.
	keep := url.Values{}
	for k, v := range q {
		switch k {
		case "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature":
		default:
			keep[k] = v
		}
	}
	keep.Set("X-Amz-Expires", expires)
	target.RawQuery = keep.Encode()
	req, err := http.NewRequest(http.MethodGet, target.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	const unsignedPayload = "UNSIGNED-PAYLOAD"
	signed, _, err := v4.NewSigner().PresignHTTP(t.Context(), aws.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing"},
		req, unsignedPayload, "s3", awstest.Region, at)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	su, err := url.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	return su.Query().Get("X-Amz-Signature")
}

// TestPresignedDownloads signs URLs with the Presigner links-api uses
// (the SDK's S3 presign client) and fetches them from the emulator's S3
// over HTTP.
//
// What moto enforces, and what it does not: it refuses an unsigned GET of
// a private object (403), but it checks neither the signature nor the
// expiry of a presigned GET of an object that exists (moto 5
// s3/responses.py only checks the headers of a signed GET of a missing
// key). So a URL altered to name another key, or used after it expired,
// is still served by moto. The test therefore proves the refusal the way
// S3 decides it: the URL's signature is the SigV4 signature of exactly its
// key and its X-Amz-Expires, recomputed here, so that S3 refuses the URL
// for any other key, and X-Amz-Date plus X-Amz-Expires is the stated
// expiry, after which S3 refuses it.
func TestPresignedDownloads(t *testing.T) {
	awstest.SkipShort(t, "the AWS emulator")
	ctx := t.Context()
	cfg := awstest.Config(t)
	client := s3.NewFromConfig(cfg)
	bucket := awstest.Name(t, "reports")
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	objects := map[string][]byte{
		reportstore.ReportKey("4437b139-8a16-11ee-b636-487b6bad036a", "pf_checking_account", "pr-1"):    bytes.Repeat([]byte(`{"checking":1}`), 4096),
		reportstore.ReportKey("4437b139-8a16-11ee-b636-487b6bad036a", "pf_credit_card", "pr-2"):         []byte(`{"credit":2}`),
		reportstore.UnmatchedKey("5537b139-8a16-11ee-b636-487b6bad036a", "pf_checking_account", "pr-3"): []byte(`{"unmatched":3}`),
	}
	for key, body := range objects {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	const ttl = 3 * time.Minute
	p, err := reportstore.NewPresigner(s3.NewPresignClient(client), bucket, ttl)
	if err != nil {
		t.Fatal(err)
	}
	checking := reportstore.ReportKey("4437b139-8a16-11ee-b636-487b6bad036a", "pf_checking_account", "pr-1")
	credit := reportstore.ReportKey("4437b139-8a16-11ee-b636-487b6bad036a", "pf_credit_card", "pr-2")

	t.Run("bytes and sha256", func(t *testing.T) {
		for _, key := range []string{checking, credit} {
			before := time.Now().UTC().Truncate(time.Second)
			u, expires, err := p.PresignGet(ctx, key)
			if err != nil {
				t.Fatalf("presign %s: %v", key, err)
			}
			status, got := fetch(t, u)
			if status != http.StatusOK {
				t.Fatalf("GET presigned %s = %d %s, want 200", key, status, got)
			}
			if !bytes.Equal(got, objects[key]) {
				t.Errorf("GET presigned %s: %d bytes differing from the %d stored", key, len(got), len(objects[key]))
			}
			if sha256.Sum256(got) != sha256.Sum256(objects[key]) {
				t.Errorf("sha256 of the downloaded %s differs from the stored bytes'", key)
			}
			if expires.Before(before.Add(ttl)) || expires.After(time.Now().Add(ttl)) {
				t.Errorf("expiry %v, want %v after signing", expires, ttl)
			}
		}
	})

	t.Run("unsigned GET refused", func(t *testing.T) {
		u, _, err := p.PresignGet(ctx, checking)
		if err != nil {
			t.Fatal(err)
		}
		bare, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		bare.RawQuery = ""
		if status, body := fetch(t, bare.String()); status != http.StatusForbidden {
			t.Errorf("GET without the signature = %d %.200s, want 403: the object must be private", status, body)
		}
	})

	t.Run("signature binds key and expiry", func(t *testing.T) {
		raw, expires, err := p.PresignGet(ctx, checking)
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		want := strconv.Itoa(int(ttl.Seconds()))
		if got := q.Get("X-Amz-Expires"); got != want {
			t.Errorf("X-Amz-Expires = %q, want %s (REPORT_URL_TTL)", got, want)
		}
		signedAt, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
		if err != nil {
			t.Fatalf("X-Amz-Date: %v", err)
		}
		if d := expires.Sub(signedAt); d < ttl-time.Second || d > ttl+time.Second {
			t.Errorf("stated expiry %v is %v after X-Amz-Date %v, want %v: S3 refuses the URL at X-Amz-Date + X-Amz-Expires", expires, d, signedAt, ttl)
		}
		sig := q.Get("X-Amz-Signature")
		if got := resign(t, u, checking, want); got != sig {
			t.Fatalf("recomputed signature %s differs from the URL's %s: the check below would prove nothing", got, sig)
		}
		if got := resign(t, u, credit, want); got == sig {
			t.Error("the URL's signature also signs another key: S3 would serve that key with it")
		}
		if got := resign(t, u, checking, "86400"); got == sig {
			t.Error("the URL's signature also signs a longer X-Amz-Expires: it could be extended")
		}
	})

	t.Run("keys outside reports/ refused", func(t *testing.T) {
		for _, key := range []string{
			reportstore.UnmatchedKey("5537b139-8a16-11ee-b636-487b6bad036a", "pf_checking_account", "pr-3"),
			"tokens/klavi.json",
			"reports/../unmatched/5537b139-8a16-11ee-b636-487b6bad036a/pf_checking_account/pr-3.json",
			"reports/4437b139-8a16-11ee-b636-487b6bad036a/pf_checking_account/pr-1.json/../../../../x.json",
			"",
		} {
			u, _, err := p.PresignGet(ctx, key)
			if err == nil || u != "" {
				t.Errorf("PresignGet(%q) = %q, %v; want no URL and an error", key, u, err)
			}
		}
	})
}
