package faultproxy

import (
	"net"
	"net/http"
	"strings"
)

// X-Amz-Target prefixes of the AWS JSON protocols the project calls.
const (
	dynamoDBTargetPrefix       = "DynamoDB_20120810."
	secretsManagerTargetPrefix = "secretsmanager."
	eventBridgeTargetPrefix    = "AWSEvents."
)

type service int

const (
	serviceOther service = iota // not an AWS call: Klavi
	serviceDynamoDB
	serviceS3
	serviceSecretsManager
	serviceEventBridge
)

// serviceOf tells which service r is for: DynamoDB and Secrets Manager by
// X-Amz-Target, S3 by the service in the SigV4 credential scope.
func serviceOf(r *http.Request) service {
	target := r.Header.Get("X-Amz-Target")
	switch {
	case strings.HasPrefix(target, dynamoDBTargetPrefix):
		return serviceDynamoDB
	case strings.HasPrefix(target, secretsManagerTargetPrefix):
		return serviceSecretsManager
	case strings.HasPrefix(target, eventBridgeTargetPrefix):
		return serviceEventBridge
	case target == "" && signingService(r) == "s3":
		return serviceS3
	default:
		return serviceOther
	}
}

// signingService returns the service of a SigV4 Authorization header
// ("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request,
// ..."), "" when there is none.
func signingService(r *http.Request) string {
	_, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return ""
	}
	return parts[3]
}

// Any selects every request.
func Any() Matcher { return func(*http.Request) bool { return true } }

// DynamoDBOp selects DynamoDB calls of the operation op, such as
// "TransactWriteItems" (X-Amz-Target: DynamoDB_20120810.TransactWriteItems).
func DynamoDBOp(op string) Matcher {
	target := dynamoDBTargetPrefix + op
	return func(r *http.Request) bool { return r.Header.Get("X-Amz-Target") == target }
}

// SecretsManagerOp selects Secrets Manager calls of the operation op, such
// as "GetSecretValue" (X-Amz-Target: secretsmanager.GetSecretValue).
func SecretsManagerOp(op string) Matcher {
	target := secretsManagerTargetPrefix + op
	return func(r *http.Request) bool { return r.Header.Get("X-Amz-Target") == target }
}

// EventBridgeOp selects EventBridge calls of the operation op, such as
// "PutEvents" (X-Amz-Target: AWSEvents.PutEvents).
func EventBridgeOp(op string) Matcher {
	target := eventBridgeTargetPrefix + op
	return func(r *http.Request) bool { return r.Header.Get("X-Amz-Target") == target }
}

// SecretsGet selects Secrets Manager GetSecretValue calls.
func SecretsGet() Matcher { return SecretsManagerOp("GetSecretValue") }

// S3Object selects S3 requests with method on an object (a bucket and a
// key), such as GET for GetObject or HEAD for HeadObject.
func S3Object(method string) Matcher {
	return func(r *http.Request) bool {
		return r.Method == method && serviceOf(r) == serviceS3 && objectPath(r)
	}
}

// S3Put selects S3 PutObject: a PUT on an object that is neither a copy
// nor a part of a multipart upload.
func S3Put() Matcher {
	put := S3Object(http.MethodPut)
	return func(r *http.Request) bool {
		q := r.URL.Query()
		return put(r) && r.Header.Get("X-Amz-Copy-Source") == "" && !q.Has("partNumber") && !q.Has("uploadId")
	}
}

// KlaviPath selects requests to exactly this URL path, such as
// "/data/v1/links", whatever their method.
func KlaviPath(path string) Matcher {
	return func(r *http.Request) bool { return r.URL.Path == path }
}

// objectPath reports whether r names an object: /bucket/key in path style
// (an IP or localhost endpoint, as in tests), /key in virtual-hosted style.
func objectPath(r *http.Request) bool {
	path := strings.TrimPrefix(r.URL.Path, "/")
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if net.ParseIP(host) != nil || host == "localhost" {
		bucket, key, ok := strings.Cut(path, "/")
		return ok && bucket != "" && key != ""
	}
	return path != ""
}
