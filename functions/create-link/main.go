// Command create-link serves the frontend's link routes behind API Gateway:
// POST /links creates a Klavi link, GET /links/{linkId} returns the link view.
// main only wires; the logic is in pkg/linkapi.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/openfinance-br/klavi-link-lambda/pkg/appconfig"
	"github.com/openfinance-br/klavi-link-lambda/pkg/lambdaapp"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
)

func main() {
	ctx := context.Background()
	app, err := lambdaapp.Load(ctx, "create-link",
		appconfig.EnvLinksTable, appconfig.EnvCredentialsSecret, appconfig.EnvTokenSecret)
	if err != nil {
		lambdaapp.Fatal(nil, "start create-link", err)
	}
	tokens, err := app.Tokens()
	if err != nil {
		lambdaapp.Fatal(app.Logger, "start create-link", err)
	}
	kc, err := app.Klavi(tokens)
	if err != nil {
		lambdaapp.Fatal(app.Logger, "start create-link", err)
	}
	store := linkstore.NewDynamo(dynamodb.NewFromConfig(app.AWS), app.Config.LinksTable)
	h := linkapi.New(kc, store, linkapi.Config{
		AllowedRedirectHosts: app.Config.AllowedRedirectHosts,
		ReportWebhookURL:     app.Config.ReportWebhookURL,
		Logger:               app.Logger,
		Metrics:              app.Metrics,
	})
	lambda.Start(h.Handle)
}
