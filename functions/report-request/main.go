// Command report-request consumes the links table's DynamoDB stream: a
// consent that became AUTHORISED gets its report request, one the user
// deleted purges its link. main only wires; the logic is in
// pkg/reportstream and pkg/reports.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/pkg/appconfig"
	"github.com/openfinance-br/klavi-link-lambda/pkg/lambdaapp"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstream"
)

func main() {
	app, err := lambdaapp.Load(context.Background(), "report-request",
		appconfig.EnvLinksTable, appconfig.EnvReportsBucket, appconfig.EnvCredentialsSecret, appconfig.EnvTokenSecret)
	if err != nil {
		lambdaapp.Fatal(nil, "start report-request", err)
	}
	tokens, err := app.Tokens()
	if err != nil {
		lambdaapp.Fatal(app.Logger, "start report-request", err)
	}
	kc, err := app.Klavi(tokens)
	if err != nil {
		lambdaapp.Fatal(app.Logger, "start report-request", err)
	}
	store := linkstore.NewDynamo(dynamodb.NewFromConfig(app.AWS), app.Config.LinksTable)
	objects := reportstore.New(s3.NewFromConfig(app.AWS, lambdaapp.S3Options), app.Config.ReportsBucket, reportstore.Options{})
	svc := reports.New(kc, store, objects, reports.Config{
		Products:         app.Config.ReportProducts,
		ReportWebhookURL: app.Config.ReportWebhookURL,
		Logger:           app.Logger,
		Metrics:          app.Metrics,
	})
	h := reportstream.New(svc, reportstream.Config{
		Marks:       store,
		AutoRequest: app.Config.AutoRequestReports,
		Logger:      app.Logger,
		Metrics:     app.Metrics,
	})
	lambda.Start(h.Handle)
}
