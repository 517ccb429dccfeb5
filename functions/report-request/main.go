// Command report-request asks Klavi for reports. It has two triggers: the
// links table's DynamoDB stream (a consent became AUTHORISED, or the user
// deleted their data) and POST /links/{linkId}/reports from API Gateway.
// main only wires; the logic is in pkg/reportrequest.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/pkg/appconfig"
	"github.com/openfinance-br/klavi-link-lambda/pkg/lambdaapp"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportrequest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
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
	h := reportrequest.New(kc, store, objects, reportrequest.Config{
		Products:         app.Config.ReportProducts,
		AutoRequest:      app.Config.AutoRequestReports,
		ReportWebhookURL: app.Config.ReportWebhookURL,
		Logger:           app.Logger,
		Metrics:          app.Metrics,
	})
	lambda.Start(h.Handle)
}
