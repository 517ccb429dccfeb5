// Command event-webhook receives Klavi's signed event webhooks
// (POST /webhooks/klavi/events) and records them in the links table.
// main only wires; the logic is in pkg/eventwebhook.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/openfinance-br/klavi-link-lambda/pkg/appconfig"
	"github.com/openfinance-br/klavi-link-lambda/pkg/eventwebhook"
	"github.com/openfinance-br/klavi-link-lambda/pkg/lambdaapp"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

func main() {
	ctx := context.Background()
	app, err := lambdaapp.Load(ctx, "event-webhook",
		appconfig.EnvLinksTable, appconfig.EnvCredentialsSecret, appconfig.EnvTokenSecret)
	if err != nil {
		lambdaapp.Fatal(nil, "start event-webhook", err)
	}
	// The token source is used here only for the secretKey (the HMAC key);
	// this function never calls Klavi.
	keys, err := app.Tokens()
	if err != nil {
		lambdaapp.Fatal(app.Logger, "start event-webhook", err)
	}
	// A link whose consent is authorised becomes due for reconciliation after
	// RECONCILE_AFTER, the same wait the sweep applies.
	store := linkstore.NewDynamo(dynamodb.NewFromConfig(app.AWS), app.Config.LinksTable,
		linkstore.WithReportGrace(app.Config.ReconcileAfter))
	h := eventwebhook.New(keys, store, eventwebhook.Config{
		SourceIPs: app.Config.SourceIPs,
		Verifier:  webhooksig.Verifier{Tolerance: app.Config.SignatureTolerance},
		Logger:    app.Logger,
		Metrics:   app.Metrics,
	})
	lambda.Start(h.Handle)
}
