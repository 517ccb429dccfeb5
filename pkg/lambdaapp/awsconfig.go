package lambdaapp

import (
	"errors"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// awsConfig builds the SDK configuration from the environment Lambda gives
// every function: AWS_REGION and the execution role's credentials in
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. It also
// honours AWS_ENDPOINT_URL (tests and local runs point the same binaries at
// an emulator) and AWS_MAX_ATTEMPTS.
//
// It stands in for config.LoadDefaultConfig on purpose: that loader links
// the SSO, SSO-OIDC, STS and instance-metadata clients and reads shared
// config files, none of which a Lambda function uses, and they made every
// binary about 1.9 MB larger and its cold start slower.
func awsConfig(getenv func(string) string) (aws.Config, error) {
	region := firstSet(getenv, "AWS_REGION", "AWS_DEFAULT_REGION")
	if region == "" {
		return aws.Config{}, errors.New("AWS_REGION is not set")
	}
	id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		return aws.Config{}, errors.New("AWS credentials are not set (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
	}
	cfg := aws.Config{
		Region:      region,
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(id, secret, getenv("AWS_SESSION_TOKEN"))),
	}
	if ep := strings.TrimSpace(getenv("AWS_ENDPOINT_URL")); ep != "" {
		cfg.BaseEndpoint = aws.String(ep)
	}
	if v := strings.TrimSpace(getenv("AWS_MAX_ATTEMPTS")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return aws.Config{}, errors.New("AWS_MAX_ATTEMPTS must be a positive integer")
		}
		cfg.RetryMaxAttempts = n
	}
	return cfg, nil
}

func firstSet(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(getenv(n)); v != "" {
			return v
		}
	}
	return ""
}
