package reportwebhook

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/pkg/compactid"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

const liveLink = "5548c24a-9b27-11ee-b636-487b6bad036a"

func TestReportWithoutIDKeptUnderCompactID(t *testing.T) {
	e := newEnv(t)
	createLink(t, e.links)
	body := []byte(`{"code":200,"productName":"pf_checking_account","links":[{"linkId":"` + fixtureLink + `"}]}`)
	resp, out := e.call(t, signed(fixture(t), body, testSecret))
	if resp.StatusCode != http.StatusOK || out["stored"] != true {
		t.Fatalf("answer = %d %s, want 200 stored", resp.StatusCode, resp.Body)
	}
	id := compactid.Of(body)
	if out["productReportId"] != id {
		t.Errorf("productReportId = %v, want %s", out["productReportId"], id)
	}
	if got := e.objects.objects[reportstore.ReportKey(fixtureLink, "pf_checking_account", id)]; !bytes.Equal(got, body) {
		t.Errorf("objects = %v, want the body under the derived id", keys(e.objects.objects))
	}
	// The same report with whitespace added (the signature check accepts
	// the compact form) is the same report.
	spaced := bytes.ReplaceAll(body, []byte(`,`), []byte(`, `))
	resp, out = e.call(t, signed(fixture(t), spaced, testSecret))
	if resp.StatusCode != http.StatusOK || out["duplicate"] != true {
		t.Errorf("spaced redelivery = %d %s, want 200 duplicate", resp.StatusCode, resp.Body)
	}
	if len(e.objects.objects) != 1 {
		t.Errorf("objects = %v, want one", keys(e.objects.objects))
	}
	if l, err := e.links.GetLink(t.Context(), fixtureLink); err != nil || len(l.Reports) != 1 || l.Reports[0].ProductReportID != id {
		t.Errorf("recorded = %+v, %v; want one report %s", l, err, id)
	}
}

func TestPurgedLinkWinsOverLiveOne(t *testing.T) {
	e := newEnv(t)
	createLink(t, e.links)
	if err := e.links.CreateLink(t.Context(), linkstore.Link{LinkID: liveLink, CreatedAt: now}); err != nil {
		t.Fatalf("create live link: %v", err)
	}
	if _, err := e.links.Purge(t.Context(), fixtureLink, now); err != nil {
		t.Fatalf("purge: %v", err)
	}
	body := []byte(`{"code":200,"productName":"pf_checking_account","productReportId":"rep-2","links":[{"linkId":"` + liveLink + `"},{"linkId":"` + fixtureLink + `"}]}`)
	resp, out := e.call(t, signed(fixture(t), body, testSecret))
	if resp.StatusCode != http.StatusOK || out["stored"] == true {
		t.Fatalf("answer = %d %s, want 200 not stored", resp.StatusCode, resp.Body)
	}
	if len(e.objects.objects) != 0 {
		t.Errorf("report naming a purged link kept: %v", keys(e.objects.objects))
	}
	if l, err := e.links.GetLink(t.Context(), liveLink); err != nil || len(l.Reports) != 0 {
		t.Errorf("live link = %+v, %v; want no report filed under it", l, err)
	}
}

func TestPurgeRaceDeleteFailureFinishedByRetry(t *testing.T) {
	e := newEnv(t)
	createLink(t, e.links)
	e.objects.failDelete = true
	e.h.links = purgeOnCheck{e.links}
	req := fixture(t)
	req = signed(req, []byte(req.Body), testSecret)
	if resp, _ := e.call(t, req); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("delete failed: status = %d, want 503", resp.StatusCode)
	}
	if len(e.objects.objects) != 1 {
		t.Fatalf("objects = %v, want the one the failed delete left", keys(e.objects.objects))
	}
	// Klavi's retry: the link is purged by now and S3 answers again.
	e.objects.failDelete = false
	e.h.links = e.links
	if resp, _ := e.call(t, req); resp.StatusCode != http.StatusOK {
		t.Fatalf("retry = %d %s, want 200", resp.StatusCode, resp.Body)
	}
	if len(e.objects.objects) != 0 {
		t.Errorf("retry left the report of a purged link: %v", keys(e.objects.objects))
	}
}

func TestPurgedLinkDeleteFailureAnswers503(t *testing.T) {
	e := newEnv(t)
	createLink(t, e.links)
	if _, err := e.links.Purge(t.Context(), fixtureLink, now); err != nil {
		t.Fatalf("purge: %v", err)
	}
	e.objects.failDelete = true
	req := fixture(t)
	if resp, _ := e.call(t, signed(req, []byte(req.Body), testSecret)); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503 while the purged link's object cannot be deleted", resp.StatusCode)
	}
}

// TestReplayAfterObjectExpiredRefused runs against moto: the object is
// removed as the bucket's lifecycle rule would, and a replay comes later.
func TestReplayAfterObjectExpiredRefused(t *testing.T) {
	a := newAWSEnv(t)
	clock := now
	a.h = New(staticKey(testSecret), reportstore.New(a.flaky, a.bucket, reportstore.Options{}), a.store, Config{
		Verifier: webhooksig.Verifier{Now: func() time.Time { return now }},
		Logger:   a.h.log,
		Metrics:  a.rec.Recorder,
		Now:      func() time.Time { return clock },
	})
	req := fixture(t)
	req = signed(req, []byte(req.Body), testSecret)
	if resp, out := a.call(t, req); resp.StatusCode != http.StatusOK || out["stored"] != true {
		t.Fatalf("first delivery = %d %s, want 200 stored", resp.StatusCode, resp.Body)
	}
	key := reportstore.ReportKey(fixtureLink, "pf_checking_account", "4b2c1648-231f-11eb-97c4-f45c899f4587")
	if _, err := a.s3.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(key)}); err != nil {
		t.Fatalf("expire object: %v", err)
	}
	clock = now.Add(91 * 24 * time.Hour)
	resp, out := a.call(t, req)
	if resp.StatusCode != http.StatusOK || out["duplicate"] != true || out["stored"] == true {
		t.Errorf("replay = %d %s, want 200 duplicate, not stored", resp.StatusCode, resp.Body)
	}
	if n := a.count(t); n != 0 {
		t.Errorf("objects after the replay = %d, want 0: the replay stored the report again", n)
	}
	l, err := a.store.GetLink(t.Context(), fixtureLink)
	if err != nil || len(l.Reports) != 1 || !l.Reports[0].ReceivedAt.Equal(now) {
		t.Errorf("record = %+v, %v; want the first delivery's record kept", l, err)
	}
}
