package stack_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
)

// restClient calls the emulator's REST-JSON APIs (Lambda, API Gateway v2)
// with SigV4-signed requests. The module does not depend on those services'
// SDK clients, and the test needs only a few read calls and one create.
type restClient struct {
	endpoint string
	creds    aws.CredentialsProvider
	signer   *v4.Signer
	http     *http.Client
}

func newRESTClient(t *testing.T, cfg aws.Config) *restClient {
	t.Helper()
	return &restClient{
		endpoint: awstest.Endpoint(t),
		creds:    cfg.Credentials,
		signer:   v4.NewSigner(),
		http:     &http.Client{Timeout: 30 * time.Second},
	}
}

// do sends body (nil for none) as JSON and decodes a 2xx answer into out.
func (c *restClient) do(ctx context.Context, service, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint+path, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("build %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	hash := sha256.Sum256(payload)
	if err := c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(hash[:]), service, awstest.Region, time.Now()); err != nil {
		return fmt.Errorf("sign %s %s: %w", method, path, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// functionConfig is the part of Lambda's GetFunctionConfiguration answer the
// tests read.
type functionConfig struct {
	FunctionArn   string
	Runtime       string
	Handler       string
	Architectures []string
	Environment   struct {
		Variables map[string]string
	}
}

// eventSourceMapping is the part of Lambda's event source mapping the tests
// read.
type eventSourceMapping struct {
	EventSourceArn   string
	FunctionArn      string
	StartingPosition string
	BatchSize        int
	FilterCriteria   struct {
		Filters []struct{ Pattern string }
	}
	DestinationConfig struct {
		OnFailure struct{ Destination string }
	}
	BisectBatchOnFunctionError bool
	MaximumRetryAttempts       int
	MaximumRecordAgeInSeconds  int
	FunctionResponseTypes      []string
}

// policyStatement is one statement of a function's resource policy.
type policyStatement struct {
	Principal struct{ Service string }
	Action    string
	Condition struct {
		ArnLike map[string]string
	}
}
