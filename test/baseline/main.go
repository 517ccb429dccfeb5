// Command baseline is the smallest aws-lambda-go function: the yardstick the
// binary size and cold start bars of every function are measured against.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(ctx context.Context, e json.RawMessage) (string, error) {
		return "ok", nil
	})
}
