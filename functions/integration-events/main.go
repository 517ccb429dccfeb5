// Command integration-events publishes the integration events of the links
// table's DynamoDB stream to the EventBridge bus EVENT_BUS_NAME. main only
// wires; the logic is in pkg/integrationevents.
package main

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/openfinance-br/klavi-link-lambda/pkg/integrationevents"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
)

const service = "integration-events"

func main() {
	logger := lambdacontext.NewLogger().With("service", service)
	fatal := func(err error) {
		logger.Error("start "+service, "error", err)
		os.Exit(1)
	}
	env := map[string]string{}
	var missing []string
	for _, name := range []string{"EVENT_BUS_NAME", "LINKS_TABLE", "REPORTS_BUCKET"} {
		env[name] = strings.TrimSpace(os.Getenv(name))
		if env[name] == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		fatal(errors.New("missing environment: " + strings.Join(missing, ", ")))
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		fatal(err)
	}
	store := linkstore.NewDynamo(dynamodb.NewFromConfig(cfg), env["LINKS_TABLE"])
	p, err := integrationevents.New(eventbridge.NewFromConfig(cfg), store, integrationevents.Config{
		EventBusName:  env["EVENT_BUS_NAME"],
		ReportsBucket: env["REPORTS_BUCKET"],
		Logger:        logger,
		Metrics:       metrics.New(os.Stdout, service),
	})
	if err != nil {
		fatal(err)
	}
	lambda.Start(p.Handle)
}
