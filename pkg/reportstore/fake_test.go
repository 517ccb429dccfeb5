package reportstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

const testBucket = "reports-bucket"

// fakeS3 answers with its function fields; a call without one fails.
type fakeS3 struct {
	putObject     func(ctx context.Context, in *s3.PutObjectInput) (*s3.PutObjectOutput, error)
	getObject     func(ctx context.Context, in *s3.GetObjectInput) (*s3.GetObjectOutput, error)
	listObjectsV2 func(ctx context.Context, in *s3.ListObjectsV2Input) (*s3.ListObjectsV2Output, error)
	deleteObjects func(ctx context.Context, in *s3.DeleteObjectsInput) (*s3.DeleteObjectsOutput, error)
}

var errUnexpectedCall = errors.New("unexpected call")

func (f *fakeS3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if f.putObject == nil {
		return nil, fmt.Errorf("PutObject: %w", errUnexpectedCall)
	}
	return f.putObject(ctx, in)
}

func (f *fakeS3) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if f.getObject == nil {
		return nil, fmt.Errorf("GetObject: %w", errUnexpectedCall)
	}
	return f.getObject(ctx, in)
}

func (f *fakeS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	if f.listObjectsV2 == nil {
		return nil, fmt.Errorf("ListObjectsV2: %w", errUnexpectedCall)
	}
	return f.listObjectsV2(ctx, in)
}

func (f *fakeS3) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, _ ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	if f.deleteObjects == nil {
		return nil, fmt.Errorf("DeleteObjects: %w", errUnexpectedCall)
	}
	return f.deleteObjects(ctx, in)
}

func apiError(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: code + " message"}
}

// statusError is an S3 error that carries only an HTTP status, as for a
// response without a body.
func statusError(status int) error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      errors.New("http error"),
	}}
}

func TestPutRequest(t *testing.T) {
	body := klavireporttest.Synthetic(16<<10, 1, "")
	sum := sha256.Sum256(body)
	sumHex := hex.EncodeToString(sum[:])
	key := reportstore.ReportKey("L1", "pf_checking_account", "rep-1")
	obj := reportstore.Object{Key: key, Body: body, RequestID: "req-1", ProductName: "pf_checking_account", ProductReportID: "rep-1", Code: "204"}
	tests := []struct {
		name    string
		opts    reportstore.Options
		wantSSE types.ServerSideEncryption
		wantKMS string
	}{
		{name: "SSE-S3 by default", wantSSE: types.ServerSideEncryptionAes256},
		{name: "SSE-KMS with a key", opts: reportstore.Options{KMSKeyID: "alias/reports"}, wantSSE: types.ServerSideEncryptionAwsKms, wantKMS: "alias/reports"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got *s3.PutObjectInput
			var sent []byte
			fake := &fakeS3{putObject: func(_ context.Context, in *s3.PutObjectInput) (*s3.PutObjectOutput, error) {
				got = in
				var err error
				sent, err = io.ReadAll(in.Body)
				return &s3.PutObjectOutput{}, err
			}}
			res, err := reportstore.New(fake, testBucket, tc.opts).Put(t.Context(), obj)
			if err != nil {
				t.Fatalf("Put() error = %v", err)
			}
			if want := (reportstore.PutResult{Key: key, SHA256: sumHex, Bytes: int64(len(body))}); res != want {
				t.Errorf("Put() = %+v, want %+v", res, want)
			}
			if !bytes.Equal(sent, body) {
				t.Errorf("body sent differs from the body given")
			}
			for _, c := range []struct{ field, got, want string }{
				{"Bucket", aws.ToString(got.Bucket), testBucket},
				{"Key", aws.ToString(got.Key), key},
				{"ContentType", aws.ToString(got.ContentType), "application/json"},
				{"IfNoneMatch", aws.ToString(got.IfNoneMatch), "*"},
				{"ChecksumAlgorithm", string(got.ChecksumAlgorithm), string(types.ChecksumAlgorithmSha256)},
				{"ChecksumSHA256", aws.ToString(got.ChecksumSHA256), base64.StdEncoding.EncodeToString(sum[:])},
				{"ServerSideEncryption", string(got.ServerSideEncryption), string(tc.wantSSE)},
				{"SSEKMSKeyId", aws.ToString(got.SSEKMSKeyId), tc.wantKMS},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
				}
			}
			if n := aws.ToInt64(got.ContentLength); n != int64(len(body)) {
				t.Errorf("ContentLength = %d, want %d", n, len(body))
			}
			wantMeta := map[string]string{"request-id": "req-1", "product": "pf_checking_account", "product-report-id": "rep-1", "code": "204", "sha256": sumHex}
			if !maps.Equal(got.Metadata, wantMeta) {
				t.Errorf("Metadata = %v, want %v", got.Metadata, wantMeta)
			}
		})
	}
}

func TestPutMetadataValues(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  string // "" means left out
	}{
		{"uuid", "4b2c1648-231f-11eb-97c4-f45c899f4587", "4b2c1648-231f-11eb-97c4-f45c899f4587"},
		{"short number", "112334", "112334"},
		{"CPF", "52998224725", ""},
		{"masked CPF", "529.982.247-25", ""},
		{"CPF inside text", "req-52998224725-x", ""},
		{"CNPJ", "11222333000181", ""},
		{"masked CNPJ", "11.222.333/0001-81", ""},
		{"alphanumeric CNPJ", "12.ABC.345/01DE-35", ""},
		{"eleven digits that are no CPF", "52998224726", "52998224726"},
		{"twelve digits", "529982247251", "529982247251"},
		{"non-ASCII escaped", "ação", "a%C3%A7%C3%A3o"},
		{"percent escaped", "100%", "100%25"},
		{"control escaped", "a\nb", "a%0Ab"},
		{"long value truncated", strings.Repeat("x", 300), strings.Repeat("x", 256)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var meta map[string]string
			fake := &fakeS3{putObject: func(_ context.Context, in *s3.PutObjectInput) (*s3.PutObjectOutput, error) {
				meta = in.Metadata
				return &s3.PutObjectOutput{}, nil
			}}
			obj := reportstore.Object{Key: reportstore.UnmatchedKey("l", "p", "r"), Body: []byte(`{}`), RequestID: tc.value}
			if _, err := reportstore.New(fake, testBucket, reportstore.Options{}).Put(t.Context(), obj); err != nil {
				t.Fatalf("Put() error = %v", err)
			}
			got, ok := meta[reportstore.MetaRequestID]
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("metadata request-id = %q (present %v), want %q", got, ok, tc.want)
			}
		})
	}
}

// TestPutRetriesOnceOnConflict follows S3's answers to a conditional put:
// 412 means stored before, 409 means another conditional write was in
// flight and the put is retried once with the whole body.
func TestPutRetriesOnceOnConflict(t *testing.T) {
	tests := []struct {
		name      string
		answers   []error
		wantErr   error // nil means success
		notErr    error
		wantCalls int
	}{
		{"stored", []error{nil}, nil, nil, 1},
		{"exists", []error{apiError("PreconditionFailed")}, reportstore.ErrExists, nil, 1},
		{"exists by status", []error{statusError(http.StatusPreconditionFailed)}, reportstore.ErrExists, nil, 1},
		{"conflict then stored", []error{apiError("ConditionalRequestConflict"), nil}, nil, nil, 2},
		{"conflict by status then stored", []error{statusError(http.StatusConflict), nil}, nil, nil, 2},
		{"conflict then exists", []error{apiError("ConditionalRequestConflict"), apiError("PreconditionFailed")}, reportstore.ErrExists, nil, 2},
		{"conflict twice", []error{apiError("ConditionalRequestConflict"), apiError("ConditionalRequestConflict")}, reportstore.ErrConflict, reportstore.ErrExists, 2},
		{"conflict then failure", []error{apiError("ConditionalRequestConflict"), apiError("InternalError")}, apiError("InternalError"), reportstore.ErrExists, 2},
		{"failure not retried", []error{apiError("InternalError")}, apiError("InternalError"), reportstore.ErrExists, 1},
		{"access denied not retried", []error{apiError("AccessDenied")}, apiError("AccessDenied"), reportstore.ErrConflict, 1},
	}
	body := klavireporttest.Synthetic(8<<10, 1, "")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			fake := &fakeS3{putObject: func(_ context.Context, in *s3.PutObjectInput) (*s3.PutObjectOutput, error) {
				calls++
				if sent, err := io.ReadAll(in.Body); err != nil || !bytes.Equal(sent, body) {
					t.Errorf("call %d sent %d bytes (read error %v), want the whole %d-byte body", calls, len(sent), err, len(body))
				}
				if calls > len(tc.answers) {
					return nil, errUnexpectedCall
				}
				if err := tc.answers[calls-1]; err != nil {
					return nil, err
				}
				return &s3.PutObjectOutput{}, nil
			}}
			s := reportstore.New(fake, testBucket, reportstore.Options{ConflictRetryDelay: time.Millisecond})
			_, err := s.Put(t.Context(), reportstore.Object{Key: reportstore.UnmatchedKey("l", "p", "r"), Body: body})
			if calls != tc.wantCalls {
				t.Errorf("PutObject calls = %d, want %d", calls, tc.wantCalls)
			}
			switch want := tc.wantErr.(type) {
			case nil:
				if err != nil {
					t.Errorf("Put() error = %v, want nil", err)
				}
			case smithy.APIError:
				var apiErr smithy.APIError
				if !errors.As(err, &apiErr) || apiErr.ErrorCode() != want.ErrorCode() {
					t.Errorf("Put() error = %v, want the %s API error", err, want.ErrorCode())
				}
			default:
				if !errors.Is(err, want) {
					t.Errorf("Put() error = %v, want %v", err, want)
				}
			}
			if tc.notErr != nil && errors.Is(err, tc.notErr) {
				t.Errorf("Put() error = %v, must not be %v", err, tc.notErr)
			}
		})
	}
}

func TestPutConflictRetryStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	fake := &fakeS3{putObject: func(context.Context, *s3.PutObjectInput) (*s3.PutObjectOutput, error) {
		calls++
		cancel()
		return nil, apiError("ConditionalRequestConflict")
	}}
	s := reportstore.New(fake, testBucket, reportstore.Options{ConflictRetryDelay: time.Hour})
	_, err := s.Put(ctx, reportstore.Object{Key: reportstore.UnmatchedKey("l", "p", "r"), Body: []byte(`{}`)})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put() error = %v, want %v", err, context.Canceled)
	}
	if calls != 1 {
		t.Errorf("PutObject calls = %d, want 1", calls)
	}
}

// TestPutConcurrentExactlyOne races ten puts of one key against a fake
// with S3's atomic If-None-Match; moto cannot give this guarantee (see
// TestPutConcurrentFirstWrites).
func TestPutConcurrentExactlyOne(t *testing.T) {
	var mu sync.Mutex
	stored := map[string][]byte{}
	fake := &fakeS3{putObject: func(_ context.Context, in *s3.PutObjectInput) (*s3.PutObjectOutput, error) {
		body, err := io.ReadAll(in.Body)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		key := aws.ToString(in.Key)
		if _, ok := stored[key]; ok && aws.ToString(in.IfNoneMatch) == "*" {
			return nil, apiError("PreconditionFailed")
		}
		stored[key] = body
		return &s3.PutObjectOutput{}, nil
	}}
	s := reportstore.New(fake, testBucket, reportstore.Options{})
	body := klavireporttest.Synthetic(64<<10, 1, "")
	key := reportstore.ReportKey("L1", "pf_checking_account", "r1")
	errs := putConcurrently(t.Context(), s, reportstore.Object{Key: key, Body: body}, 10)
	ok, exists := 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, reportstore.ErrExists):
			exists++
		default:
			t.Errorf("concurrent Put %d error = %v, want nil or %v", i, err, reportstore.ErrExists)
		}
	}
	if ok != 1 || exists != 9 {
		t.Errorf("concurrent Puts: %d succeeded and %d got ErrExists, want 1 and 9", ok, exists)
	}
	if !bytes.Equal(stored[key], body) {
		t.Errorf("stored body differs from the body put")
	}
}

func TestPutRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		key  string
		body []byte
		want error
	}{
		{"empty key", "", []byte(`{}`), reportstore.ErrInvalidKey},
		{"empty link id", reportstore.ReportKey("", "p", "r"), []byte(`{}`), reportstore.ErrInvalidKey},
		{"empty product", reportstore.ReportKey("l", "", "r"), []byte(`{}`), reportstore.ErrInvalidKey},
		{"empty report id", reportstore.ReportKey("l", "p", ""), []byte(`{}`), reportstore.ErrInvalidKey},
		{"empty unmatched report id", reportstore.UnmatchedKey("l", "p", ""), []byte(`{}`), reportstore.ErrInvalidKey},
		{"no suffix", "reports/l/p/r", []byte(`{}`), reportstore.ErrInvalidKey},
		{"dot dot segment", "reports/../p/r.json", []byte(`{}`), reportstore.ErrInvalidKey},
		{"dot segment", "reports/l/./r.json", []byte(`{}`), reportstore.ErrInvalidKey},
		{"hidden report id", "reports/l/p/.json", []byte(`{}`), reportstore.ErrInvalidKey},
		{"unescaped slash", "reports/l/p/a/r.json", []byte(`{}`), reportstore.ErrInvalidKey},
		{"unescaped space", "reports/l m/p/r.json", []byte(`{}`), reportstore.ErrInvalidKey},
		{"other root", "other/l/p/r.json", []byte(`{}`), reportstore.ErrInvalidKey},
		{"leading slash", "/reports/l/p/r.json", []byte(`{}`), reportstore.ErrInvalidKey},
		{"unmatched without a link segment", "unmatched/p/r.json", []byte(`{}`), reportstore.ErrInvalidKey},
		{"too long", reportstore.ReportKey("l", "p", strings.Repeat("r", 1020)), []byte(`{}`), reportstore.ErrInvalidKey},
		{"empty body", reportstore.ReportKey("l", "p", "r"), nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeS3{} // any S3 call fails the put with errUnexpectedCall
			_, err := reportstore.New(fake, testBucket, reportstore.Options{}).Put(t.Context(), reportstore.Object{Key: tc.key, Body: tc.body})
			if err == nil || errors.Is(err, errUnexpectedCall) {
				t.Fatalf("Put() error = %v, want a rejection before any S3 call", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Put() error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestErrorsNameBucketAndKeyNotBody(t *testing.T) {
	const cpf = "52998224725"
	body := []byte(`{"enquiryCpf":"` + cpf + `","productReportId":"r"}`)
	key := reportstore.ReportKey("L1", "pf_loans", "r")
	fake := &fakeS3{
		putObject: func(context.Context, *s3.PutObjectInput) (*s3.PutObjectOutput, error) {
			return nil, apiError("InternalError")
		},
		getObject: func(context.Context, *s3.GetObjectInput) (*s3.GetObjectOutput, error) {
			return nil, apiError("InternalError")
		},
		listObjectsV2: func(context.Context, *s3.ListObjectsV2Input) (*s3.ListObjectsV2Output, error) {
			return nil, apiError("InternalError")
		},
	}
	s := reportstore.New(fake, testBucket, reportstore.Options{})
	_, putErr := s.Put(t.Context(), reportstore.Object{Key: key, Body: body, RequestID: cpf})
	_, _, openErr := s.Open(t.Context(), key)
	_, deleteErr := s.DeletePrefix(t.Context(), reportstore.LinkPrefix("L1"))
	for _, err := range []error{putErr, openErr, deleteErr} {
		if err == nil {
			t.Fatalf("error = nil, want the S3 failure")
		}
		msg := err.Error()
		if !strings.Contains(msg, testBucket) || !strings.Contains(msg, "L1") {
			t.Errorf("error %q does not name the bucket and key", msg)
		}
		if strings.Contains(msg, cpf) || strings.Contains(msg, "enquiryCpf") {
			t.Errorf("error %q holds body content", msg)
		}
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) {
			t.Errorf("error %q does not wrap the S3 error", msg)
		}
	}
}

func TestOpenMapsMissingKey(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"NoSuchKey", &types.NoSuchKey{}},
		{"status 404", statusError(http.StatusNotFound)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeS3{getObject: func(context.Context, *s3.GetObjectInput) (*s3.GetObjectOutput, error) {
				return nil, tc.err
			}}
			_, _, err := reportstore.New(fake, testBucket, reportstore.Options{}).Open(t.Context(), reportstore.UnmatchedKey("l", "p", "r"))
			if !errors.Is(err, reportstore.ErrNotFound) {
				t.Errorf("Open() error = %v, want %v", err, reportstore.ErrNotFound)
			}
		})
	}
}

func TestOpenRejectsBadKey(t *testing.T) {
	_, _, err := reportstore.New(&fakeS3{}, testBucket, reportstore.Options{}).Open(t.Context(), "reports/../x.json")
	if !errors.Is(err, reportstore.ErrInvalidKey) {
		t.Errorf("Open() error = %v, want %v", err, reportstore.ErrInvalidKey)
	}
}

// listing serves n keys under prefix in pages of the requested size.
func listing(t *testing.T, n int, prefix string) func(context.Context, *s3.ListObjectsV2Input) (*s3.ListObjectsV2Output, error) {
	t.Helper()
	return func(_ context.Context, in *s3.ListObjectsV2Input) (*s3.ListObjectsV2Output, error) {
		if got := aws.ToString(in.Prefix); got != prefix {
			t.Errorf("ListObjectsV2 Prefix = %q, want %q", got, prefix)
		}
		start := 0
		if tok := aws.ToString(in.ContinuationToken); tok != "" {
			fmt.Sscan(tok, &start)
		}
		end := min(start+int(aws.ToInt32(in.MaxKeys)), n)
		out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(end < n)}
		for i := start; i < end; i++ {
			out.Contents = append(out.Contents, types.Object{Key: aws.String(fmt.Sprintf("%sp/r%05d.json", prefix, i))})
		}
		if end < n {
			out.NextContinuationToken = aws.String(fmt.Sprint(end))
		}
		return out, nil
	}
}

func TestDeletePrefixBatches(t *testing.T) {
	prefix := reportstore.LinkPrefix("L1")
	var batches []int
	fake := &fakeS3{
		listObjectsV2: listing(t, 2500, prefix),
		deleteObjects: func(_ context.Context, in *s3.DeleteObjectsInput) (*s3.DeleteObjectsOutput, error) {
			if !aws.ToBool(in.Delete.Quiet) {
				t.Errorf("DeleteObjects Quiet = false, want true")
			}
			batches = append(batches, len(in.Delete.Objects))
			return &s3.DeleteObjectsOutput{}, nil
		},
	}
	n, err := reportstore.New(fake, testBucket, reportstore.Options{}).DeletePrefix(t.Context(), prefix)
	if err != nil || n != 2500 {
		t.Fatalf("DeletePrefix() = %d, %v, want 2500, nil", n, err)
	}
	if want := []int{1000, 1000, 500}; fmt.Sprint(batches) != fmt.Sprint(want) {
		t.Errorf("DeleteObjects batch sizes = %v, want %v", batches, want)
	}
}

func TestDeletePrefixReportsPartialFailure(t *testing.T) {
	prefix := reportstore.LinkPrefix("L1")
	fake := &fakeS3{
		listObjectsV2: listing(t, 5, prefix),
		deleteObjects: func(_ context.Context, in *s3.DeleteObjectsInput) (*s3.DeleteObjectsOutput, error) {
			return &s3.DeleteObjectsOutput{Errors: []types.Error{
				{Key: in.Delete.Objects[1].Key, Code: aws.String("AccessDenied")},
				{Key: in.Delete.Objects[3].Key, Code: aws.String("AccessDenied")},
			}}, nil
		},
	}
	n, err := reportstore.New(fake, testBucket, reportstore.Options{}).DeletePrefix(t.Context(), prefix)
	if err == nil || n != 3 {
		t.Fatalf("DeletePrefix() = %d, %v, want 3 and an error", n, err)
	}
	for _, want := range []string{testBucket, prefix, "2 of 5", "AccessDenied"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("DeletePrefix() error = %q, want it to mention %q", err, want)
		}
	}
}

func TestKeys(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"report", reportstore.ReportKey("L1", "pf_checking_account", "4b2c1648-231f-11eb-97c4-f45c899f4587"), "reports/L1/pf_checking_account/4b2c1648-231f-11eb-97c4-f45c899f4587.json"},
		{"unmatched", reportstore.UnmatchedKey("L1", "pf_credit_card", "r1"), "unmatched/L1/pf_credit_card/r1.json"},
		{"unmatched without link", reportstore.UnmatchedKey("", "pf_credit_card", "r1"), "unmatched/_none/pf_credit_card/r1.json"},
		{"unmatched prefix", reportstore.UnmatchedPrefix("L1"), "unmatched/L1/"},
		{"link prefix", reportstore.LinkPrefix("L1"), "reports/L1/"},
		{"parent", reportstore.ReportKey("..", "p", "r"), "reports/%2E./p/r.json"},
		{"current", reportstore.ReportKey(".", "p", "r"), "reports/%2E/p/r.json"},
		{"climb", reportstore.ReportKey("../x", "p", "r"), "reports/%2E.%2Fx/p/r.json"},
		{"slash", reportstore.ReportKey("a/b", "p/q", "r/s"), "reports/a%2Fb/p%2Fq/r%2Fs.json"},
		{"hidden", reportstore.UnmatchedKey("l", "p", ".env"), "unmatched/l/p/%2Eenv.json"},
		{"inner dots kept", reportstore.ReportKey("v1.2..3", "p", "r.json"), "reports/v1.2..3/p/r.json.json"},
		{"space and percent", reportstore.ReportKey("a b%2F", "p", "r"), "reports/a%20b%252F/p/r.json"},
		{"non-ASCII", reportstore.ReportKey("ação", "p", "r"), "reports/a%C3%A7%C3%A3o/p/r.json"},
		{"control", reportstore.ReportKey("a\x00b", "p", "r"), "reports/a%00b/p/r.json"},
		{"prefix escaped like the key", reportstore.LinkPrefix("../x"), "reports/%2E.%2Fx/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("key = %q, want %q", tc.got, tc.want)
			}
		})
	}
}

// TestKeysInjective checks that ids which differ give keys which differ,
// including ids that look like escapes of each other.
func TestKeysInjective(t *testing.T) {
	ids := []string{"a/b", "a%2Fb", "a%252Fb", ".", "%2E", "..", "%2E.", ".a", "%2Ea", "a.", "a", "A", " ", "%20", "ç", "%C3%A7"}
	seen := map[string]string{}
	for _, id := range ids {
		for _, key := range []string{reportstore.ReportKey(id, "p", "r"), reportstore.ReportKey("l", "p", id)} {
			if other, ok := seen[key]; ok {
				t.Errorf("ids %q and %q share key %q", other, id, key)
			}
			seen[key] = id
		}
	}
}

// TestPutAllocation guards the memory bar: Put must send the body it was
// given, not a copy. BenchmarkPutFake5MB measures the 5 MB case.
func TestPutAllocation(t *testing.T) {
	body := klavireporttest.Synthetic(1<<20, 1, "")
	s := reportstore.New(drainingS3(), testBucket, reportstore.Options{})
	obj := reportstore.Object{Key: reportstore.UnmatchedKey("l", "p", "r"), Body: body, RequestID: "req", ProductName: "p", ProductReportID: "r", Code: "200"}
	if _, err := s.Put(t.Context(), obj); err != nil {
		t.Fatalf("Put() error = %v", err)
	}
	const runs = 3
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if _, err := s.Put(t.Context(), obj); err != nil {
			t.Fatalf("Put() error = %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	perCall := (after.TotalAlloc - before.TotalAlloc) / runs
	if limit := uint64(64 << 10); perCall > limit {
		t.Errorf("Put(1 MB) allocated %d bytes per call, want <= %d", perCall, limit)
	}
}

// BenchmarkPutFake5MB measures what Put itself allocates for a 5 MB report,
// with an S3 fake that only drains the body.
func BenchmarkPutFake5MB(b *testing.B) {
	body := klavireporttest.Synthetic(5<<20, 1, "")
	s := reportstore.New(drainingS3(), testBucket, reportstore.Options{})
	obj := reportstore.Object{Key: reportstore.UnmatchedKey("l", "p", "r"), Body: body, RequestID: "req", ProductName: "p", ProductReportID: "r", Code: "200"}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := s.Put(b.Context(), obj); err != nil {
			b.Fatal(err)
		}
	}
}

func drainingS3() *fakeS3 {
	return &fakeS3{putObject: func(_ context.Context, in *s3.PutObjectInput) (*s3.PutObjectOutput, error) {
		_, err := io.Copy(io.Discard, in.Body)
		return &s3.PutObjectOutput{}, err
	}}
}
