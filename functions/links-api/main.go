// Command links-api is the links API behind API Gateway: POST /links
// creates a Klavi link, GET /links/{linkId} returns the link view, POST
// /links/{linkId}/reports requests the link's reports now, GET
// /links/{linkId}/reports/{productReportId} signs a report's download URL,
// POST /links/{linkId}/revoke revokes the link's consents and DELETE
// /links/{linkId} erases the link. main only wires; the logic is in
// pkg/linkapi, pkg/reports and pkg/revocation.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/pkg/appconfig"
	"github.com/openfinance-br/klavi-link-lambda/pkg/lambdaapp"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/revocation"
)

func main() {
	ctx := context.Background()
	app, err := lambdaapp.Load(ctx, "links-api",
		appconfig.EnvLinksTable, appconfig.EnvReportsBucket, appconfig.EnvCredentialsSecret, appconfig.EnvTokenSecret)
	if err != nil {
		lambdaapp.Fatal(nil, "start links-api", err)
	}
	tokens, err := app.Tokens()
	if err != nil {
		lambdaapp.Fatal(app.Logger, "start links-api", err)
	}
	kc, err := app.Klavi(tokens)
	if err != nil {
		lambdaapp.Fatal(app.Logger, "start links-api", err)
	}
	store := linkstore.NewDynamo(dynamodb.NewFromConfig(app.AWS), app.Config.LinksTable)
	s3c := s3.NewFromConfig(app.AWS)
	objects := reportstore.New(s3c, app.Config.ReportsBucket, reportstore.Options{})
	// Signing needs no call; the policy lets it sign for reports/ only.
	presigner, err := reportstore.NewPresigner(s3.NewPresignClient(s3c), app.Config.ReportsBucket, app.Config.ReportURLTTL)
	if err != nil {
		lambdaapp.Fatal(app.Logger, "start links-api", err)
	}
	// The report deleter serves DELETE /links/{linkId}, which purges as
	// consent_deleted_by_user does.
	svc := reports.New(kc, store, objects, reports.Config{
		Products:         app.Config.ReportProducts,
		ReportWebhookURL: app.Config.ReportWebhookURL,
		ManualCooldown:   app.Config.ReportCooldown,
		Logger:           app.Logger,
		Metrics:          app.Metrics,
	})
	revoker := revocation.New(kc, store, svc, revocation.Config{Logger: app.Logger, Metrics: app.Metrics})
	h := linkapi.New(kc, store, svc, linkapi.Config{
		Downloads:            presigner,
		Revocation:           revoker,
		AllowedRedirectHosts: app.Config.AllowedRedirectHosts,
		ReportWebhookURL:     app.Config.ReportWebhookURL,
		Access:               app.Config.Access,
		Logger:               app.Logger,
		Metrics:              app.Metrics,
	})
	lambda.Start(h.Handle)
}
