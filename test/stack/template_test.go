package stack_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTemplateProperties checks the CloudFormation AWS SAM makes of
// template.yaml for what a deployment to moto cannot show: the HTTP API, the
// properties moto ignores (see TestTemplateDeploysToEmulator) and the
// template's own promises (routes never open, least privilege, alarms that
// reach someone).
func TestTemplateProperties(t *testing.T) {
	t.Parallel()
	template := transformTemplate(t, "s3://code-bucket/functions.zip")
	res := resources(t, template)

	t.Run("functions", func(t *testing.T) {
		got := ofType(res, "AWS::Lambda::Function")
		slices.Sort(got)
		want := functionIDs()
		slices.Sort(want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("functions (-want +got):\n%s", diff)
		}
		envNames := []string{
			"ALLOWED_REDIRECT_HOSTS", "AUTO_REQUEST_REPORTS", "KLAVI_BASE_URL", "KLAVI_CREDENTIALS_SECRET",
			"KLAVI_SOURCE_IPS", "KLAVI_TOKEN_SECRET", "LINKS_TABLE", "REPORTS_BUCKET", "REPORT_PRODUCTS",
			"REPORT_WEBHOOK_URL",
		}
		for _, id := range functionIDs() {
			p := props(t, res, id)
			for _, c := range []struct {
				field string
				want  any
			}{
				{"Runtime", "provided.al2023"},
				{"Handler", "bootstrap"},
				{"Architectures", []any{"arm64"}},
				{"TracingConfig", map[string]any{"Mode": "Active"}},
			} {
				if diff := cmp.Diff(c.want, p[c.field]); diff != "" {
					t.Errorf("%s %s (-want +got):\n%s", id, c.field, diff)
				}
			}
			logging, _ := p["LoggingConfig"].(map[string]any)
			if got := logging["LogFormat"]; got != "JSON" {
				t.Errorf("%s LoggingConfig.LogFormat = %v, want JSON", id, got)
			}
			env, _ := p["Environment"].(map[string]any)
			vars, _ := env["Variables"].(map[string]any)
			for _, name := range envNames {
				if _, ok := vars[name]; !ok {
					t.Errorf("%s: environment variable %s missing", id, name)
				}
			}
		}
		// Klavi waits 10 s for a webhook answer.
		for _, id := range []string{"EventWebhookFunction", "ReportWebhookFunction"} {
			if got, _ := props(t, res, id)["Timeout"].(float64); got <= 0 || got > 10 {
				t.Errorf("%s Timeout = %v, want 1..10 s", id, got)
			}
		}
		if got, _ := props(t, res, "ReportWebhookFunction")["MemorySize"].(float64); got < 1024 {
			t.Errorf("ReportWebhookFunction MemorySize = %v, want >= 1024 for 6 MB bodies", got)
		}
	})

	t.Run("routes never open", func(t *testing.T) {
		conds, _ := template["Conditions"].(map[string]any)
		wantCond := map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "JwtIssuer"}, ""}}}}
		if diff := cmp.Diff(wantCond, conds["HasJwtIssuer"]); diff != "" {
			t.Errorf("condition HasJwtIssuer (-want +got):\n%s", diff)
		}
		if got := res["JwtAuthorizer"]["Condition"]; got != "HasJwtIssuer" {
			t.Errorf("JwtAuthorizer Condition = %v, want HasJwtIssuer", got)
		}
		frontend := func(jwt bool) route {
			if jwt {
				return route{Function: "LinksApiFunction", Auth: "JWT", Authorizer: "JwtAuthorizer"}
			}
			return route{Function: "LinksApiFunction", Auth: "AWS_IAM"}
		}
		for _, jwt := range []bool{true, false} {
			want := map[string]route{
				"POST /links":                                   frontend(jwt),
				"GET /links/{linkId}":                           frontend(jwt),
				"POST /links/{linkId}/reports":                  frontend(jwt),
				"GET /links/{linkId}/reports/{productReportId}": frontend(jwt),
				"POST /links/{linkId}/revoke":                   frontend(jwt),
				"DELETE /links/{linkId}":                        frontend(jwt),
				"POST /webhooks/klavi/events":                   {Function: "EventWebhookFunction", Auth: "NONE"},
				"POST /webhooks/klavi/reports":                  {Function: "ReportWebhookFunction", Auth: "NONE"},
			}
			got := routes(t, res, map[string]bool{"HasJwtIssuer": jwt})
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("routes with HasJwtIssuer=%v (-want +got):\n%s", jwt, diff)
			}
		}
	})

	t.Run("webhook routes throttled apart and watched", func(t *testing.T) {
		stage := props(t, res, "HttpApiStage")
		defaults, _ := stage["DefaultRouteSettings"].(map[string]any)
		if defaults["ThrottlingBurstLimit"] == nil || !cmp.Equal(defaults["ThrottlingRateLimit"], map[string]any{"Ref": "ThrottlingRateLimit"}) {
			t.Errorf("DefaultRouteSettings = %v, want the frontend throttle parameters", defaults)
		}
		webhook := map[string]any{
			"ThrottlingBurstLimit":   map[string]any{"Ref": "WebhookThrottlingBurstLimit"},
			"ThrottlingRateLimit":    map[string]any{"Ref": "WebhookThrottlingRateLimit"},
			"DetailedMetricsEnabled": true,
		}
		want := map[string]any{}
		for key, r := range routes(t, res, map[string]bool{"HasJwtIssuer": true}) {
			if r.Auth == "NONE" {
				want[key] = webhook
			}
		}
		if len(want) != 2 {
			t.Fatalf("webhook routes = %v, want the two Klavi webhooks", want)
		}
		if diff := cmp.Diff(want, stage["RouteSettings"]); diff != "" {
			t.Errorf("stage RouteSettings (-want +got):\n%s", diff)
		}
		deps, _ := res["HttpApiStage"]["DependsOn"].([]any)
		for _, id := range []string{"EventWebhookRoute", "ReportWebhookRoute"} {
			if !slices.Contains(deps, any(id)) {
				t.Errorf("HttpApiStage DependsOn = %v, want %s (RouteSettings name it)", deps, id)
			}
		}

		filter, _ := props(t, res, "WebhookThrottledFilter")["FilterPattern"].(string)
		for _, part := range []string{`"POST /webhooks/klavi/events"`, `"POST /webhooks/klavi/reports"`, "$.status = 429"} {
			if !strings.Contains(filter, part) {
				t.Errorf("WebhookThrottledFilter pattern %q lacks %s", filter, part)
			}
		}
		if got := props(t, res, "WebhookThrottledAlarm")["MetricName"]; got != "WebhookThrottled" {
			t.Errorf("WebhookThrottledAlarm watches %v, want WebhookThrottled", got)
		}
		var resources []string
		metrics, _ := props(t, res, "WebhookClientErrorsAlarm")["Metrics"].([]any)
		for _, m := range metrics {
			stat, _ := m.(map[string]any)["MetricStat"].(map[string]any)
			metric, _ := stat["Metric"].(map[string]any)
			if metric == nil {
				continue
			}
			if metric["Namespace"] != "AWS/ApiGateway" || metric["MetricName"] != "4xx" {
				t.Errorf("WebhookClientErrorsAlarm metric %v, want AWS/ApiGateway 4xx", metric)
			}
			dims, _ := metric["Dimensions"].([]any)
			for _, d := range dims {
				if d := d.(map[string]any); d["Name"] == "Resource" {
					resources = append(resources, d["Value"].(string))
				}
			}
		}
		slices.Sort(resources)
		if diff := cmp.Diff([]string{"/webhooks/klavi/events", "/webhooks/klavi/reports"}, resources); diff != "" {
			t.Errorf("WebhookClientErrorsAlarm routes (-want +got):\n%s", diff)
		}
	})

	t.Run("access log feeds the metric filters", func(t *testing.T) {
		settings, _ := props(t, res, "HttpApiStage")["AccessLogSettings"].(map[string]any)
		format, _ := settings["Format"].(string)
		// API Gateway fills each $context variable in; status is a bare number.
		sample := regexp.MustCompile(`\$context\.[A-Za-z.]+`).ReplaceAllStringFunc(format, func(v string) string {
			if v == "$context.status" {
				return "413"
			}
			return "x"
		})
		var entry map[string]any
		if err := json.Unmarshal([]byte(sample), &entry); err != nil {
			t.Fatalf("access log format is not JSON once filled in: %v\n%s", err, sample)
		}
		if got, ok := entry["status"].(float64); !ok || got != 413 {
			t.Errorf("access log status = %#v, want the number 413", entry["status"])
		}
		for _, key := range []string{"routeKey", "responseLength", "integrationErrorMessage", "requestId"} {
			if _, ok := entry[key]; !ok {
				t.Errorf("access log has no %q field", key)
			}
		}
	})

	// moto's CloudFormation ignores these table properties.
	t.Run("table", func(t *testing.T) {
		p := props(t, res, "LinksTable")
		for _, c := range []struct {
			field string
			want  any
		}{
			{"BillingMode", "PAY_PER_REQUEST"},
			{"TimeToLiveSpecification", map[string]any{"AttributeName": "ttl", "Enabled": true}},
			{"PointInTimeRecoverySpecification", map[string]any{"PointInTimeRecoveryEnabled": true}},
			{"SSESpecification", map[string]any{"SSEEnabled": true}},
			{"StreamSpecification", map[string]any{"StreamViewType": "NEW_AND_OLD_IMAGES"}},
		} {
			if diff := cmp.Diff(c.want, p[c.field]); diff != "" {
				t.Errorf("LinksTable %s (-want +got):\n%s", c.field, diff)
			}
		}
		if got := res["LinksTable"]["DeletionPolicy"]; got != "Retain" {
			t.Errorf("LinksTable DeletionPolicy = %v, want Retain", got)
		}
	})

	// moto's CloudFormation applies only the bucket's encryption.
	t.Run("bucket", func(t *testing.T) {
		p := props(t, res, "ReportsBucket")
		for _, c := range []struct {
			field string
			want  any
		}{
			{"PublicAccessBlockConfiguration", map[string]any{
				"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
			}},
			{"OwnershipControls", map[string]any{"Rules": []any{map[string]any{"ObjectOwnership": "BucketOwnerEnforced"}}}},
			{"LifecycleConfiguration", map[string]any{"Rules": []any{map[string]any{
				"Id":                             "expire-reports",
				"Status":                         "Enabled",
				"ExpirationInDays":               map[string]any{"Ref": "ReportRetentionDays"},
				"AbortIncompleteMultipartUpload": map[string]any{"DaysAfterInitiation": float64(1)},
			}}}},
		} {
			if diff := cmp.Diff(c.want, p[c.field]); diff != "" {
				t.Errorf("ReportsBucket %s (-want +got):\n%s", c.field, diff)
			}
		}
		doc, _ := props(t, res, "ReportsBucketPolicy")["PolicyDocument"].(map[string]any)
		wantDeny := map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}}
		found := false
		for _, s := range statements(doc) {
			if s["Effect"] == "Deny" && cmp.Equal(s["Condition"], wantDeny) {
				found = true
			}
		}
		if !found {
			t.Errorf("ReportsBucketPolicy has no Deny on aws:SecureTransport=false: %v", doc)
		}
	})

	t.Run("least privilege", func(t *testing.T) {
		allowedManaged := map[string]bool{
			"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole":    true,
			"arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess":                      true,
			"arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole": true,
		}
		for _, role := range ofType(res, "AWS::IAM::Role") {
			p := props(t, res, role)
			managed, _ := p["ManagedPolicyArns"].([]any)
			for _, arn := range managed {
				if s, _ := arn.(string); !allowedManaged[s] {
					t.Errorf("%s: unexpected managed policy %v", role, arn)
				}
			}
			policies, _ := p["Policies"].([]any)
			for _, pol := range policies {
				pol, _ := pol.(map[string]any)
				doc, _ := pol["PolicyDocument"].(map[string]any)
				for _, s := range statements(doc) {
					for _, action := range strList(s["Action"]) {
						if action == "*" || strings.HasSuffix(action, ":*") {
							t.Errorf("%s: wildcard action %q", role, action)
						}
					}
					for _, resource := range strList(s["Resource"]) {
						if resource == "*" {
							t.Errorf("%s: statement %v on every resource", role, s["Action"])
						}
					}
				}
			}
		}
		// The webhooks only need the signing key, never the access token.
		for _, role := range []string{"EventWebhookFunctionRole", "ReportWebhookFunctionRole"} {
			b, err := json.Marshal(props(t, res, role)["Policies"])
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), `{"Ref":"TokenSecret"}`) {
				t.Errorf("%s may read the token secret", role)
			}
		}
	})

	t.Run("schedules", func(t *testing.T) {
		got := map[string]any{}
		for _, id := range ofType(res, "AWS::Events::Rule") {
			p := props(t, res, id)
			targets, _ := p["Targets"].([]any)
			for _, target := range targets {
				target, _ := target.(map[string]any)
				got[getAttResource(target["Arn"])] = p["ScheduleExpression"]
			}
		}
		want := map[string]any{
			"TokenRefreshFunction": "rate(20 minutes)",
			"ReconcileFunction":    map[string]any{"Ref": "ReconcileSchedule"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("schedules by function (-want +got):\n%s", diff)
		}
	})

	t.Run("alarms reach the topic", func(t *testing.T) {
		alarms := ofType(res, "AWS::CloudWatch::Alarm")
		if len(alarms) == 0 {
			t.Fatal("template has no alarms")
		}
		topic := map[string]any{"Ref": "AlarmTopic"}
		for _, id := range alarms {
			p := props(t, res, id)
			if d, _ := p["AlarmDescription"].(string); strings.TrimSpace(d) == "" {
				t.Errorf("%s has no AlarmDescription", id)
			}
			actions, _ := p["AlarmActions"].([]any)
			if !slices.ContainsFunc(actions, func(a any) bool { return cmp.Equal(a, topic) }) {
				t.Errorf("%s AlarmActions = %v, want the AlarmTopic", id, actions)
			}
		}
	})
}

// route is where an HTTP API route leads and who may call it.
type route struct {
	Function   string // logical id behind the route's integration
	Auth       string // AuthorizationType
	Authorizer string // logical id of the authorizer, empty for none
}

// routes resolves every AWS::ApiGatewayV2::Route by route key, with the
// template's conditions set as in conds.
func routes(t *testing.T, res map[string]map[string]any, conds map[string]bool) map[string]route {
	t.Helper()
	out := map[string]route{}
	for _, id := range ofType(res, "AWS::ApiGatewayV2::Route") {
		p, _ := resolveIf(t, props(t, res, id), conds).(map[string]any)
		key, _ := p["RouteKey"].(string)
		r := route{}
		r.Auth, _ = p["AuthorizationType"].(string)
		if ref, ok := p["AuthorizerId"].(map[string]any); ok {
			r.Authorizer, _ = ref["Ref"].(string)
		}
		target, _ := p["Target"].(map[string]any)
		sub, _ := target["Fn::Sub"].(string)
		integration := strings.TrimSuffix(strings.TrimPrefix(sub, "integrations/${"), "}")
		r.Function = getAttResource(props(t, res, integration)["IntegrationUri"])
		out[key] = r
	}
	return out
}

// resolveIf evaluates every Fn::If in v with the given condition values and
// drops values that resolve to AWS::NoValue.
func resolveIf(t *testing.T, v any, conds map[string]bool) any {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		if args, ok := v["Fn::If"].([]any); ok && len(args) == 3 {
			name, _ := args[0].(string)
			value, ok := conds[name]
			if !ok {
				t.Fatalf("Fn::If on condition %q, which the test does not set", name)
			}
			if value {
				return resolveIf(t, args[1], conds)
			}
			return resolveIf(t, args[2], conds)
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			r := resolveIf(t, e, conds)
			if isNoValue(r) {
				continue
			}
			out[k] = r
		}
		return out
	case []any:
		out := make([]any, 0, len(v))
		for _, e := range v {
			if r := resolveIf(t, e, conds); !isNoValue(r) {
				out = append(out, r)
			}
		}
		return out
	default:
		return v
	}
}

func isNoValue(v any) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 1 && m["Ref"] == "AWS::NoValue"
}

// getAttResource returns X of {"Fn::GetAtt": ["X", "Arn"]}.
func getAttResource(v any) string {
	m, _ := v.(map[string]any)
	args, _ := m["Fn::GetAtt"].([]any)
	if len(args) == 0 {
		return ""
	}
	s, _ := args[0].(string)
	return s
}

// statements returns a policy document's statements, one or many.
func statements(doc map[string]any) []map[string]any {
	var out []map[string]any
	switch s := doc["Statement"].(type) {
	case map[string]any:
		out = append(out, s)
	case []any:
		for _, e := range s {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// strList returns the plain strings of a string-or-list policy field;
// intrinsic functions (objects) are not wildcards and are left out.
func strList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
