// Command token-refresh runs on an EventBridge schedule: it gets a new Klavi
// access token with the credentials secret and stores it in the token
// secret, from which every other function reads it. The schedule must run
// more often than the token lifetime minus the readers' refresh margin
// (30 min - 2 min), so readers always find a fresh token in the secret.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/openfinance-br/klavi-link-lambda/pkg/appconfig"
	"github.com/openfinance-br/klavi-link-lambda/pkg/lambdaapp"
)

func main() {
	app, err := lambdaapp.Load(context.Background(), "token-refresh",
		appconfig.EnvCredentialsSecret, appconfig.EnvTokenSecret)
	if err != nil {
		lambdaapp.Fatal(nil, "start token-refresh", err)
	}
	src, err := app.Tokens()
	if err != nil {
		lambdaapp.Fatal(app.Logger, "start token-refresh", err)
	}
	h := &handler{rotator: src, log: app.Logger}
	lambda.Start(h.Handle)
}
