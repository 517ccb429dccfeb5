// Command report-webhook receives Klavi's signed product reports
// (POST /webhooks/klavi/reports), stores each one in S3 byte for byte and
// lists it on its link. main only wires; the logic is in pkg/reportwebhook.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/pkg/appconfig"
	"github.com/openfinance-br/klavi-link-lambda/pkg/lambdaapp"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportwebhook"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

func main() {
	ctx := context.Background()
	app, err := lambdaapp.Load(ctx, "report-webhook",
		appconfig.EnvLinksTable, appconfig.EnvReportsBucket, appconfig.EnvCredentialsSecret, appconfig.EnvTokenSecret)
	if err != nil {
		lambdaapp.Fatal(nil, "start report-webhook", err)
	}
	// The token source is used here only for the secretKey (the HMAC key).
	keys, err := app.Tokens()
	if err != nil {
		lambdaapp.Fatal(app.Logger, "start report-webhook", err)
	}
	objects := reportstore.New(s3.NewFromConfig(app.AWS, lambdaapp.S3Options), app.Config.ReportsBucket, reportstore.Options{})
	links := linkstore.NewDynamo(dynamodb.NewFromConfig(app.AWS), app.Config.LinksTable)
	h := reportwebhook.New(keys, objects, links, reportwebhook.Config{
		SourceIPs: app.Config.SourceIPs,
		Verifier:  webhooksig.Verifier{Tolerance: app.Config.SignatureTolerance},
		Logger:    app.Logger,
		Metrics:   app.Metrics,
	})
	// h is a lambda.Handler: it reads the event from the payload bytes itself.
	lambda.Start(h)
}
