// Command create-link is the links API behind API Gateway: POST /links
// creates a Klavi link, GET /links/{linkId} returns the link view, POST
// /links/{linkId}/reports requests the link's reports now. main only wires;
// the logic is in pkg/linkapi and pkg/reports.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/openfinance-br/klavi-link-lambda/pkg/appconfig"
	"github.com/openfinance-br/klavi-link-lambda/pkg/lambdaapp"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
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
	// Manual report requests never purge, so the service gets no report
	// deleter (and the function no s3:DeleteObject).
	svc := reports.New(kc, store, nil, reports.Config{
		Products:         app.Config.ReportProducts,
		ReportWebhookURL: app.Config.ReportWebhookURL,
		Logger:           app.Logger,
		Metrics:          app.Metrics,
	})
	h := linkapi.New(kc, store, svc, linkapi.Config{
		AllowedRedirectHosts: app.Config.AllowedRedirectHosts,
		ReportWebhookURL:     app.Config.ReportWebhookURL,
		Logger:               app.Logger,
		Metrics:              app.Metrics,
	})
	lambda.Start(h.Handle)
}
