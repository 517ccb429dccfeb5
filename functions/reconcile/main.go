// Command reconcile runs on an EventBridge schedule and catches up on links
// whose Klavi webhooks never arrived: it asks Klavi for the consents of due
// links, fixes their state in the store and requests missing reports once,
// and finishes deletions the fintech asked for that Klavi left half done.
// main only wires; the logic is in pkg/reconcile.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/pkg/appconfig"
	"github.com/openfinance-br/klavi-link-lambda/pkg/lambdaapp"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reconcile"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/revocation"
)

func main() {
	ctx := context.Background()
	app, err := lambdaapp.Load(ctx, "reconcile",
		appconfig.EnvLinksTable, appconfig.EnvReportsBucket, appconfig.EnvCredentialsSecret, appconfig.EnvTokenSecret)
	if err != nil {
		lambdaapp.Fatal(nil, "start reconcile", err)
	}
	tokens, err := app.Tokens()
	if err != nil {
		lambdaapp.Fatal(app.Logger, "start reconcile", err)
	}
	kc, err := app.Klavi(tokens)
	if err != nil {
		lambdaapp.Fatal(app.Logger, "start reconcile", err)
	}
	// An authorisation the sweep recovers is looked at again
	// RECONCILE_AFTER later, to see whether its reports came.
	store := linkstore.NewDynamo(dynamodb.NewFromConfig(app.AWS), app.Config.LinksTable,
		linkstore.WithReportGrace(app.Config.ReconcileAfter))
	// The report deleter is for purges marked pending on a link (a
	// deletion of the whole link, a purge the stream failed).
	objects := reportstore.New(s3.NewFromConfig(app.AWS, lambdaapp.S3Options), app.Config.ReportsBucket, reportstore.Options{})
	requester := reports.New(kc, store, objects, reports.Config{
		Products:         app.Config.ReportProducts,
		ReportWebhookURL: app.Config.ReportWebhookURL,
		Logger:           app.Logger,
		Metrics:          app.Metrics,
	})
	// A deletion the fintech asked for and Klavi left unfinished is
	// finished through the same revocation and purge as the route's.
	deleter := revocation.New(kc, store, requester, revocation.Config{Logger: app.Logger, Metrics: app.Metrics})
	r := reconcile.New(store, kc, requester, reconcile.Config{
		ReconcileAfter: app.Config.ReconcileAfter,
		AutoRequest:    app.Config.AutoRequestReports,
		Purger:         requester,
		Deleter:        deleter,
		Logger:         app.Logger,
		Metrics:        app.Metrics,
	})
	lambda.Start(r.Handle)
}
