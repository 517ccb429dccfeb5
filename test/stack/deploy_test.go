package stack_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
)

// What moto's CloudFormation (moto 5.2) does with this template, and what
// the test does about it.
//
// Resource types it does not implement are skipped with a warning, and every
// reference to them is left unresolved: an environment variable that refers
// to one disappears from the function, a ${Name} inside Fn::Sub stays
// literal, and an output's Fn::GetAtt on one fails the whole stack. So:
//
//   - AWS::SecretsManager::Secret (CredentialsSecret, TokenSecret) and
//     AWS::ApiGatewayV2::Api (HttpApi) are created by hand in moto (Secrets
//     Manager, API Gateway v2), removed from the template, and every Ref,
//     Fn::GetAtt and ${...} to them is replaced with the hand-made
//     resource's ARN, id or endpoint;
//   - AWS::ApiGatewayV2::Stage, ::Authorizer, ::Integration and ::Route,
//     AWS::S3::BucketPolicy, AWS::SNS::Subscription, AWS::Logs::MetricFilter
//     and AWS::CloudWatch::Alarm are left for moto to skip: nothing else in
//     the template refers to them. TestTemplateProperties checks the routes,
//     the bucket policy, the access log and the alarms on the template.
//
// Of the types it implements, it ignores some properties, which
// TestTemplateProperties checks on the template instead:
//
//   - AWS::Lambda::Function: Architectures (it reports x86_64),
//     TracingConfig and LoggingConfig;
//   - AWS::DynamoDB::Table: TimeToLiveSpecification,
//     PointInTimeRecoverySpecification and SSESpecification;
//   - AWS::S3::Bucket: everything but BucketEncryption (public access block,
//     ownership controls, lifecycle rules).

// handMadeTypes are the resource types the test creates by hand.
func handMadeTypes() map[string]bool {
	return map[string]bool{
		"AWS::SecretsManager::Secret": true,
		"AWS::ApiGatewayV2::Api":      true,
	}
}

// skippedTypes are the resource types moto's CloudFormation leaves out.
func skippedTypes() map[string]bool {
	return map[string]bool{
		"AWS::ApiGatewayV2::Stage":       true,
		"AWS::ApiGatewayV2::Authorizer":  true,
		"AWS::ApiGatewayV2::Integration": true,
		"AWS::ApiGatewayV2::Route":       true,
		"AWS::S3::BucketPolicy":          true,
		"AWS::SNS::Subscription":         true,
		"AWS::Logs::MetricFilter":        true,
		"AWS::CloudWatch::Alarm":         true,
	}
}

// standIn is a resource made by hand for one the emulator cannot create.
type standIn struct {
	ref   string            // the value of Ref
	attrs map[string]string // the values of Fn::GetAtt, by attribute
}

// deployParams makes every condition a resource carries true, so the stack
// must hold every resource moto implements.
func deployParams() map[string]string {
	return map[string]string{
		"JwtIssuer":            "https://issuer.example.com/",
		"JwtAudience":          "frontend",
		"AlarmEmail":           "alarms@example.com",
		"CorsAllowOrigins":     "https://app.example.com",
		"AllowedRedirectHosts": "app.example.com",
		"KlaviSourceIps":       "18.231.92.86/32",
	}
}

func TestTemplateDeploysToEmulator(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	ctx := t.Context()
	rest := newRESTClient(t, cfg)

	template := transformTemplate(t, uploadCode(t, s3.NewFromConfig(cfg)))
	standIns := replaceUnsupported(t, cfg, rest, template)
	res := resources(t, template)

	cf := cloudformation.NewFromConfig(cfg)
	stackName := awstest.Name(t, "klavi-link")
	body, err := json.Marshal(template)
	if err != nil {
		t.Fatalf("encode template: %v", err)
	}
	var params []cftypes.Parameter
	for k, v := range deployParams() {
		params = append(params, cftypes.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(v)})
	}
	if _, err := cf.CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName:    aws.String(stackName),
		TemplateBody: aws.String(string(body)),
		Capabilities: []cftypes.Capability{cftypes.CapabilityCapabilityIam},
		Parameters:   params,
	}); err != nil {
		t.Fatalf("create stack: %v", err)
	}
	waiter := cloudformation.NewStackCreateCompleteWaiter(cf, func(o *cloudformation.StackCreateCompleteWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
	})
	described, err := waiter.WaitForOutput(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stackName)}, 2*time.Minute)
	if err != nil {
		t.Fatalf("stack %s did not reach CREATE_COMPLETE: %v\n%s", stackName, err, stackEvents(t, cf, stackName))
	}

	// Physical ids by logical id; moto lists the resources it skipped with
	// an empty logical id.
	phys := map[string]string{}
	pages := cloudformation.NewListStackResourcesPaginator(cf, &cloudformation.ListStackResourcesInput{StackName: aws.String(stackName)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("list stack resources: %v", err)
		}
		for _, r := range page.StackResourceSummaries {
			if id := aws.ToString(r.LogicalResourceId); id != "" {
				phys[id] = aws.ToString(r.PhysicalResourceId)
			}
		}
	}

	t.Run("only the documented types are skipped", func(t *testing.T) {
		var got, want []string
		for id, r := range res {
			typ, _ := r["Type"].(string)
			if _, ok := phys[id]; !ok {
				got = append(got, id+" "+typ)
			}
			if skippedTypes()[typ] {
				want = append(want, id+" "+typ)
			}
		}
		sort.Strings(got)
		sort.Strings(want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("resources missing from the stack (-want +got):\n%s", diff)
		}
	})

	tableName := phys["LinksTable"]
	table, err := dynamodb.NewFromConfig(cfg).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tableName)})
	if err != nil {
		t.Fatalf("describe table %q: %v", tableName, err)
	}

	t.Run("table", func(t *testing.T) {
		td := table.Table
		if td.StreamSpecification == nil || !aws.ToBool(td.StreamSpecification.StreamEnabled) ||
			td.StreamSpecification.StreamViewType != "NEW_AND_OLD_IMAGES" {
			t.Errorf("stream = %+v, want enabled with NEW_AND_OLD_IMAGES", td.StreamSpecification)
		}
		if aws.ToString(td.LatestStreamArn) == "" {
			t.Errorf("table has no stream ARN")
		}
		keys := func(ks []ddbtypes.KeySchemaElement) []string {
			var out []string
			for _, k := range ks {
				out = append(out, aws.ToString(k.AttributeName)+" "+string(k.KeyType))
			}
			return out
		}
		if diff := cmp.Diff([]string{"pk HASH", "sk RANGE"}, keys(td.KeySchema)); diff != "" {
			t.Errorf("key schema (-want +got):\n%s", diff)
		}
		gsis := map[string][]string{}
		for _, g := range td.GlobalSecondaryIndexes {
			proj := ""
			if g.Projection != nil {
				proj = string(g.Projection.ProjectionType)
			}
			gsis[aws.ToString(g.IndexName)] = append(keys(g.KeySchema), proj)
		}
		if diff := cmp.Diff(map[string][]string{"attention": {"attn HASH", "attnDue RANGE", "KEYS_ONLY"}}, gsis); diff != "" {
			t.Errorf("global secondary indexes (-want +got):\n%s", diff)
		}
		// moto's CloudFormation does not apply SSESpecification; if it ever
		// does, it must be on.
		if sse := td.SSEDescription; sse != nil && sse.Status != "ENABLED" {
			t.Errorf("SSE status = %q, want ENABLED", sse.Status)
		}
	})

	t.Run("bucket", func(t *testing.T) {
		client := s3.NewFromConfig(cfg)
		bucket := phys["ReportsBucket"]
		enc, err := client.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatalf("get encryption of bucket %q: %v", bucket, err)
		}
		var algos []string
		for _, r := range enc.ServerSideEncryptionConfiguration.Rules {
			if r.ApplyServerSideEncryptionByDefault != nil {
				algos = append(algos, string(r.ApplyServerSideEncryptionByDefault.SSEAlgorithm))
			}
		}
		if diff := cmp.Diff([]string{"AES256"}, algos); diff != "" {
			t.Errorf("default encryption (-want +got):\n%s", diff)
		}
		// moto's CloudFormation does not apply the public access block; if
		// it ever does, it must be complete.
		pab, err := client.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: aws.String(bucket)})
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchPublicAccessBlockConfiguration" {
			t.Log("the emulator did not apply the public access block (checked on the template)")
			return
		}
		if err != nil {
			t.Fatalf("get public access block of bucket %q: %v", bucket, err)
		}
		c := pab.PublicAccessBlockConfiguration
		if !aws.ToBool(c.BlockPublicAcls) || !aws.ToBool(c.BlockPublicPolicy) || !aws.ToBool(c.IgnorePublicAcls) || !aws.ToBool(c.RestrictPublicBuckets) {
			t.Errorf("public access block = %+v, want all true", c)
		}
	})

	configs := map[string]functionConfig{}
	for _, id := range functionIDs() {
		var fc functionConfig
		if err := rest.do(ctx, "lambda", "GET", "/2015-03-31/functions/"+url.PathEscape(phys[id])+"/configuration", nil, &fc); err != nil {
			t.Fatalf("function %s (%q): %v", id, phys[id], err)
		}
		configs[id] = fc
	}

	t.Run("functions", func(t *testing.T) {
		env := map[string]string{
			"KLAVI_BASE_URL":           "https://api-sandbox.klavi.ai",
			"KLAVI_CREDENTIALS_SECRET": standIns["CredentialsSecret"].ref,
			"KLAVI_TOKEN_SECRET":       standIns["TokenSecret"].ref,
			"LINKS_TABLE":              tableName,
			"REPORTS_BUCKET":           phys["ReportsBucket"],
			"REPORT_PRODUCTS":          "all",
			"AUTO_REQUEST_REPORTS":     "true",
			"ALLOWED_REDIRECT_HOSTS":   "app.example.com",
			"REPORT_WEBHOOK_URL":       standIns["HttpApi"].attrs["ApiEndpoint"] + "/webhooks/klavi/reports",
			"KLAVI_SOURCE_IPS":         "18.231.92.86/32",
			"RECONCILE_AFTER":          "15m",
			"REPORT_URL_TTL":           "5m",
			"JWT_OWNER_CLAIM":          "sub",
			"JWT_ADMIN_SCOPE":          "klavi-link/admin",
			"REPORT_REQUEST_COOLDOWN":  "10m",
		}
		for _, id := range functionIDs() {
			fc := configs[id]
			if fc.Runtime != "provided.al2023" || fc.Handler != "bootstrap" {
				t.Errorf("%s runtime/handler = %q/%q, want provided.al2023/bootstrap", id, fc.Runtime, fc.Handler)
			}
			// moto's CloudFormation drops Architectures and reports its
			// default; anything else it reports must be arm64.
			if a := fc.Architectures; !slices.Equal(a, []string{"x86_64"}) && !slices.Equal(a, []string{"arm64"}) {
				t.Errorf("%s architectures = %v, want [arm64]", id, a)
			}
			want := env
			if id == "IntegrationEventsFunction" {
				want = maps.Clone(env)
				want["EVENT_BUS_NAME"] = stackName + "-klavi-link"
			}
			if diff := cmp.Diff(want, fc.Environment.Variables); diff != "" {
				t.Errorf("%s environment (-want +got):\n%s", id, diff)
			}
		}
	})

	t.Run("stream feeds report requests", func(t *testing.T) {
		fn := configs["ReportRequestFunction"]
		var list struct{ EventSourceMappings []eventSourceMapping }
		path := "/2015-03-31/event-source-mappings/?FunctionName=" + url.QueryEscape(phys["ReportRequestFunction"])
		if err := rest.do(ctx, "lambda", "GET", path, nil, &list); err != nil {
			t.Fatalf("list event source mappings: %v", err)
		}
		if len(list.EventSourceMappings) != 1 {
			t.Fatalf("ReportRequestFunction has %d event source mappings, want 1: %+v", len(list.EventSourceMappings), list.EventSourceMappings)
		}
		got := list.EventSourceMappings[0]
		var gotFilters []any
		for _, f := range got.FilterCriteria.Filters {
			var p any
			if err := json.Unmarshal([]byte(f.Pattern), &p); err != nil {
				t.Errorf("filter pattern %q is not JSON: %v", f.Pattern, err)
			}
			gotFilters = append(gotFilters, p)
		}
		var wantFilters []any
		for _, p := range []string{
			`{"dynamodb":{"NewImage":{"type":{"S":["consent"]},"status":{"S":["AUTHORISED"]}}}}`,
			`{"dynamodb":{"NewImage":{"status":{"S":["DELETED_BY_USER"]}}}}`,
			`{"dynamodb":{"NewImage":{"type":{"S":["link"]},"work":{"S":["purge"]}}}}`,
		} {
			var v any
			if err := json.Unmarshal([]byte(p), &v); err != nil {
				t.Fatal(err)
			}
			wantFilters = append(wantFilters, v)
		}
		if diff := cmp.Diff(wantFilters, gotFilters); diff != "" {
			t.Errorf("filters (-want +got):\n%s", diff)
		}

		want := eventSourceMapping{
			EventSourceArn:             aws.ToString(table.Table.LatestStreamArn),
			FunctionArn:                fn.FunctionArn,
			StartingPosition:           "LATEST",
			BatchSize:                  10,
			BisectBatchOnFunctionError: true,
			MaximumRetryAttempts:       5,
			MaximumRecordAgeInSeconds:  3600,
			FunctionResponseTypes:      []string{"ReportBatchItemFailures"},
		}
		want.DestinationConfig.OnFailure.Destination = queueARN(t, fn.FunctionArn, phys["DeadLetterQueue"])
		got.FilterCriteria.Filters = nil
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("event source mapping (-want +got):\n%s", diff)
		}
	})

	t.Run("stream feeds integration events", func(t *testing.T) {
		fn := configs["IntegrationEventsFunction"]
		var list struct{ EventSourceMappings []eventSourceMapping }
		path := "/2015-03-31/event-source-mappings/?FunctionName=" + url.QueryEscape(phys["IntegrationEventsFunction"])
		if err := rest.do(ctx, "lambda", "GET", path, nil, &list); err != nil {
			t.Fatalf("list event source mappings: %v", err)
		}
		if len(list.EventSourceMappings) != 1 {
			t.Fatalf("IntegrationEventsFunction has %d event source mappings, want 1: %+v", len(list.EventSourceMappings), list.EventSourceMappings)
		}
		got := list.EventSourceMappings[0]
		got.FilterCriteria.Filters = nil
		want := eventSourceMapping{
			EventSourceArn:             aws.ToString(table.Table.LatestStreamArn),
			FunctionArn:                fn.FunctionArn,
			StartingPosition:           "LATEST",
			BatchSize:                  100,
			BisectBatchOnFunctionError: true,
			MaximumRetryAttempts:       10,
			MaximumRecordAgeInSeconds:  86400,
			FunctionResponseTypes:      []string{"ReportBatchItemFailures"},
		}
		want.DestinationConfig.OnFailure.Destination = queueARN(t, fn.FunctionArn, phys["DeadLetterQueue"])
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("event source mapping (-want +got):\n%s", diff)
		}
	})

	t.Run("API may invoke the functions", func(t *testing.T) {
		api := "arn:aws:execute-api:" + awstest.Region + ":" + accountOf(t, configs["LinksApiFunction"].FunctionArn) + ":" + standIns["HttpApi"].ref
		want := map[string][]string{
			"LinksApiFunction":      {api + "/*/GET/links/*", api + "/*/POST/links", api + "/*/POST/links/*/reports"},
			"EventWebhookFunction":  {api + "/*/POST/webhooks/klavi/events"},
			"ReportWebhookFunction": {api + "/*/POST/webhooks/klavi/reports"},
		}
		got := map[string][]string{}
		for id := range want {
			var answer struct{ Policy string }
			if err := rest.do(ctx, "lambda", "GET", "/2015-03-31/functions/"+url.PathEscape(phys[id])+"/policy", nil, &answer); err != nil {
				t.Fatalf("policy of %s: %v", id, err)
			}
			var policy struct{ Statement []policyStatement }
			if err := json.Unmarshal([]byte(answer.Policy), &policy); err != nil {
				t.Fatalf("decode policy of %s: %v", id, err)
			}
			for _, s := range policy.Statement {
				if s.Principal.Service == "apigateway.amazonaws.com" && s.Action == "lambda:InvokeFunction" {
					got[id] = append(got[id], s.Condition.ArnLike["AWS:SourceArn"])
				}
			}
			sort.Strings(got[id])
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("API Gateway invoke permissions (-want +got):\n%s", diff)
		}
	})

	t.Run("outputs", func(t *testing.T) {
		endpoint := standIns["HttpApi"].attrs["ApiEndpoint"]
		want := map[string]string{
			"ApiUrl":               endpoint,
			"EventWebhookUrl":      endpoint + "/webhooks/klavi/events",
			"ReportWebhookUrl":     endpoint + "/webhooks/klavi/reports",
			"LinksTableName":       tableName,
			"ReportsBucketName":    phys["ReportsBucket"],
			"CredentialsSecretArn": standIns["CredentialsSecret"].ref,
			"TokenSecretArn":       standIns["TokenSecret"].ref,
			"AlarmTopicArn":        phys["AlarmTopic"],
			"DeadLetterQueueUrl":   phys["DeadLetterQueue"],
			"EventBusName":         stackName + "-klavi-link",
			"EventBusArn":          "arn:aws:events:" + awstest.Region + ":" + accountOf(t, configs["LinksApiFunction"].FunctionArn) + ":event-bus/" + stackName + "-klavi-link",
		}
		got := map[string]string{}
		for _, s := range described.Stacks {
			for _, o := range s.Outputs {
				got[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
			}
		}
		// The archive's name is generated: check what it is instead.
		archive := strings.TrimPrefix(got["EventArchiveArn"], "arn:aws:events:"+awstest.Region+":"+accountOf(t, configs["LinksApiFunction"].FunctionArn)+":archive/")
		a, err := eventbridge.NewFromConfig(cfg).DescribeArchive(ctx, &eventbridge.DescribeArchiveInput{ArchiveName: aws.String(archive)})
		if err != nil {
			t.Fatalf("describe archive %q of output EventArchiveArn %q: %v", archive, got["EventArchiveArn"], err)
		}
		if aws.ToString(a.EventSourceArn) != want["EventBusArn"] || aws.ToInt32(a.RetentionDays) != 30 {
			t.Errorf("archive source %q retention %d, want %q and 30 days", aws.ToString(a.EventSourceArn), aws.ToInt32(a.RetentionDays), want["EventBusArn"])
		}
		want["EventArchiveArn"] = aws.ToString(a.ArchiveArn)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("stack outputs (-want +got):\n%s", diff)
		}
	})
}

// uploadCode puts a function package in a new bucket and returns its s3://
// location. The functions are not invoked here, so the package holds only a
// placeholder bootstrap.
func uploadCode(t *testing.T, client *s3.Client) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	header := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate}
	header.SetMode(0o755)
	w, err := zw.CreateHeader(header)
	if err != nil {
		t.Fatalf("zip: %v", err)
	}
	if _, err := w.Write([]byte("#!/bin/sh\nexit 1\n")); err != nil {
		t.Fatalf("zip: %v", err)
	}
	if err := zw.Close(); err != nil {
		t.Fatalf("zip: %v", err)
	}
	bucket, key := awstest.Name(t, "code"), "functions.zip"
	if _, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create code bucket: %v", err)
	}
	if _, err := client.PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(buf.Bytes()),
	}); err != nil {
		t.Fatalf("upload code: %v", err)
	}
	return "s3://" + bucket + "/" + key
}

// replaceUnsupported creates by hand each resource of a type moto's
// CloudFormation cannot create (handMadeTypes), removes it from template and
// points every reference at the hand-made one. It returns the stand-ins by
// logical id.
func replaceUnsupported(t *testing.T, cfg aws.Config, rest *restClient, template map[string]any) map[string]standIn {
	t.Helper()
	ctx := t.Context()
	sm := secretsmanager.NewFromConfig(cfg)
	out := map[string]standIn{}
	for id, r := range resources(t, template) {
		typ, _ := r["Type"].(string)
		if !handMadeTypes()[typ] {
			continue
		}
		p, _ := r["Properties"].(map[string]any)
		switch typ {
		case "AWS::SecretsManager::Secret":
			value, _ := p["SecretString"].(string)
			created, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
				Name:         aws.String(awstest.Name(t, strings.ToLower(id))),
				SecretString: aws.String(value),
			})
			if err != nil {
				t.Fatalf("create stand-in for %s: %v", id, err)
			}
			arn := aws.ToString(created.ARN)
			out[id] = standIn{ref: arn, attrs: map[string]string{"Id": arn}}
		case "AWS::ApiGatewayV2::Api":
			var api struct {
				ID       string `json:"apiId"`
				Endpoint string `json:"apiEndpoint"`
			}
			if err := rest.do(ctx, "apigateway", "POST", "/v2/apis",
				map[string]string{"name": awstest.Name(t, "api"), "protocolType": "HTTP"}, &api); err != nil {
				t.Fatalf("create stand-in for %s: %v", id, err)
			}
			if api.ID == "" || api.Endpoint == "" {
				t.Fatalf("stand-in for %s: emulator returned id %q, endpoint %q", id, api.ID, api.Endpoint)
			}
			out[id] = standIn{ref: api.ID, attrs: map[string]string{"ApiId": api.ID, "ApiEndpoint": api.Endpoint}}
		}
	}
	for id, s := range out {
		// substitute returns new maps: look the section up each time.
		all, _ := template["Resources"].(map[string]any)
		delete(all, id)
		for section, v := range template {
			template[section] = substitute(t, v, id, s)
		}
		b, err := json.Marshal(template)
		if err != nil {
			t.Fatal(err)
		}
		for _, left := range []string{`"` + id + `"`, "${" + id + "}", "${" + id + "."} {
			if bytes.Contains(b, []byte(left)) {
				t.Fatalf("template still refers to %s (%s) after replacing it", id, left)
			}
		}
	}
	return out
}

// substitute replaces Ref, Fn::GetAtt and Fn::Sub references to the logical
// id in v with the stand-in's values.
func substitute(t *testing.T, v any, id string, s standIn) any {
	t.Helper()
	attr := func(name string) string {
		value, ok := s.attrs[name]
		if !ok {
			t.Fatalf("template reads %s.%s, which the stand-in does not provide", id, name)
		}
		return value
	}
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 1 {
			if v["Ref"] == id {
				return s.ref
			}
			switch args := v["Fn::GetAtt"].(type) {
			case []any:
				if len(args) == 2 && args[0] == id {
					name, _ := args[1].(string)
					return attr(name)
				}
			case string:
				if name, ok := strings.CutPrefix(args, id+"."); ok {
					return attr(name)
				}
			}
			if sub, ok := v["Fn::Sub"]; ok {
				replace := func(text string) string {
					text = strings.ReplaceAll(text, "${"+id+"}", s.ref)
					for name := range s.attrs {
						text = strings.ReplaceAll(text, "${"+id+"."+name+"}", s.attrs[name])
					}
					return text
				}
				switch sub := sub.(type) {
				case string:
					return map[string]any{"Fn::Sub": replace(sub)}
				case []any:
					if len(sub) == 2 {
						text, _ := sub[0].(string)
						return map[string]any{"Fn::Sub": []any{replace(text), substitute(t, sub[1], id, s)}}
					}
				}
			}
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = substitute(t, e, id, s)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = substitute(t, e, id, s)
		}
		return out
	default:
		return v
	}
}

// stackEvents describes why a stack failed, for the failure message.
func stackEvents(t *testing.T, cf *cloudformation.Client, stackName string) string {
	t.Helper()
	out, err := cf.DescribeStackEvents(t.Context(), &cloudformation.DescribeStackEventsInput{StackName: aws.String(stackName)})
	if err != nil {
		return fmt.Sprintf("(stack events unavailable: %v)", err)
	}
	var b strings.Builder
	for _, e := range out.StackEvents {
		fmt.Fprintf(&b, "%s %s %s %s\n", aws.ToString(e.LogicalResourceId), aws.ToString(e.ResourceType),
			e.ResourceStatus, aws.ToString(e.ResourceStatusReason))
	}
	return b.String()
}

// accountOf returns the account id field of an ARN.
func accountOf(t *testing.T, arn string) string {
	t.Helper()
	parts := strings.Split(arn, ":")
	if len(parts) < 6 {
		t.Fatalf("not an ARN: %q", arn)
	}
	return parts[4]
}

// queueARN returns the ARN of the SQS queue at queueURL, in the account of
// a sibling resource's ARN.
func queueARN(t *testing.T, siblingARN, queueURL string) string {
	t.Helper()
	return "arn:aws:sqs:" + awstest.Region + ":" + accountOf(t, siblingARN) + ":" + path.Base(queueURL)
}
