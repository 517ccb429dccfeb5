// Command token-refresh runs on an EventBridge schedule: it gets a new Klavi
// access token with the credentials secret and stores it in the token
// secret, from which every other function reads it. The schedule must run
// more often than the token lifetime minus the readers' refresh margin
// (30 min - 2 min), so readers always find a fresh token in the secret.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openfinance-br/klavi-link-lambda/pkg/appconfig"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/tokensource"
)

func main() {
	logger := lambdacontext.NewLogger()
	fail := func(msg string, err error) {
		logger.Error(msg, "error", err)
		os.Exit(1)
	}

	cfg, err := appconfig.Load(os.Getenv, appconfig.EnvCredentialsSecret, appconfig.EnvTokenSecret)
	if err != nil {
		fail("read configuration", err)
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		fail("load AWS configuration", err)
	}
	// The client's default HTTP client bounds every phase of a request
	// (15 s overall), well inside the function timeout.
	kc, err := klavi.New(cfg.KlaviBaseURL)
	if err != nil {
		fail("build Klavi client", err)
	}
	src, err := tokensource.New(secretsmanager.NewFromConfig(awsCfg), kc, tokensource.Config{
		CredentialsSecretID: cfg.CredentialsSecret,
		TokenSecretID:       cfg.TokenSecret,
	})
	if err != nil {
		fail("build token source", err)
	}

	h := &handler{rotator: src, log: logger}
	lambda.Start(h.Handle)
}
