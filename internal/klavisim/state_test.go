package klavisim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

func TestAuthoriseConsent(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t)
	linkID := e.createLink(t, tok, `{"personalTaxId":"12345678909","institutionCode":"260","externalInfo":{"k":"v"}}`)

	c, err := e.sim.AuthoriseConsent(linkID, "")
	if err != nil {
		t.Fatalf("AuthoriseConsent: %v", err)
	}
	now := e.clock.Now()
	want := Consent{
		ID: c.ID, LinkID: linkID, ExternalTrackID: c.ExternalTrackID,
		PersonalTaxID: testCPF, InstitutionCode: "260", Status: klavi.ConsentAuthorised,
		PermissionsApply:   defaultPermissions(),
		PermissionsGranted: defaultPermissions(),
		ExpireAt:           time.Date(2026, 3, 1, 23, 59, 59, 999e6, time.UTC),
		CreatedAt:          now, UpdatedAt: now,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("consent = %+v, want %+v", c, want)
	}
	if !uuidRE.MatchString(c.ID) || c.ExternalTrackID == "" {
		t.Errorf("consentId = %q, externalTrackId = %q; want a UUID and a value", c.ID, c.ExternalTrackID)
	}

	again, err := e.sim.AuthoriseConsent(linkID, "260")
	if err != nil || again.ID != c.ID {
		t.Errorf("authorising again = %s, %v; want the same consent %s", again.ID, err, c.ID)
	}
	if n := len(e.sim.Consents()); n != 1 {
		t.Errorf("consents = %d, want 1", n)
	}

	e.events.mu.Lock()
	evs := append([]Event(nil), e.events.events...)
	e.events.mu.Unlock()
	if len(evs) != 2 || evs[1].Name != EventConsentAuthorised {
		t.Fatalf("events = %v, want link_created then consent_authorised once", e.events.names())
	}
	if ev := evs[1]; ev.Consent == nil || ev.Consent.ID != c.ID || ev.Link == nil || string(ev.Link.ExternalInfo) != `{"k":"v"}` {
		t.Errorf("consent_authorised event = %+v, want the consent and its link", ev)
	}
}

func TestAuthoriseConsentErrors(t *testing.T) {
	tests := []struct {
		name      string
		linkBody  string
		linkID    string // overrides the created link's id
		inst      string
		advance   time.Duration
		wantError error
	}{
		{name: "unknown link", linkBody: `{"personalTaxId":"12345678909"}`, linkID: "nope", inst: "260", wantError: ErrNotFound},
		{name: "expired link", linkBody: `{"personalTaxId":"12345678909"}`, inst: "260", advance: 30 * time.Minute, wantError: ErrLinkExpired},
		{name: "no tax id", linkBody: `{}`, inst: "260", wantError: ErrNoTaxID},
		{name: "no institution", linkBody: `{"personalTaxId":"12345678909"}`, wantError: ErrInstitution},
		{name: "malformed institution", linkBody: `{"personalTaxId":"12345678909"}`, inst: "33", wantError: ErrInstitution},
		{name: "not the link's institution", linkBody: `{"personalTaxId":"12345678909","institutionCode":"260"}`, inst: "001", wantError: ErrInstitution},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			id := e.createLink(t, e.token(t), tc.linkBody)
			if tc.linkID != "" {
				id = tc.linkID
			}
			e.clock.Advance(tc.advance)
			_, err := e.sim.AuthoriseConsent(id, tc.inst)
			if !errors.Is(err, tc.wantError) {
				t.Errorf("error = %v, want %v", err, tc.wantError)
			}
			if n := len(e.sim.Consents()); n != 0 {
				t.Errorf("consents = %d, want 0", n)
			}
		})
	}
}

func TestSetConsentStatus(t *testing.T) {
	e := newEnv(t, nil)
	c := e.authorisedConsent(t, e.token(t), "personalTaxId", testCPF, "260")

	if _, err := e.sim.SetConsentStatus(c.ID, "authorised"); !errors.Is(err, ErrInvalidStatus) {
		t.Errorf("lower-case status: error = %v, want ErrInvalidStatus", err)
	}
	if _, err := e.sim.SetConsentStatus("nope", klavi.ConsentRevoked); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown consent: error = %v, want ErrNotFound", err)
	}
	for _, st := range []klavi.ConsentStatus{klavi.ConsentAwaitingLGPDAuthorisation, klavi.ConsentAuthorised, klavi.ConsentDeletedByUser} {
		got, err := e.sim.SetConsentStatus(c.ID, st)
		if err != nil || got.Status != st {
			t.Errorf("SetConsentStatus(%s) = %s, %v; want %s", st, got.Status, err, st)
		}
	}
	want := []string{EventLinkCreated, EventConsentAuthorised, EventConsentAuthorised, EventConsentDeletedByUser}
	if names := e.events.names(); !reflect.DeepEqual(names, want) {
		t.Errorf("events = %v, want %v", names, want)
	}
}

func TestConsentExpiresAtExpireAt(t *testing.T) {
	e := newEnv(t, nil)
	c := e.authorisedConsent(t, e.token(t), "personalTaxId", testCPF, "260")
	e.clock.Advance(c.ExpireAt.Sub(e.clock.Now()) - time.Millisecond)
	if got, _ := e.sim.Consent(c.ID); got.Status != klavi.ConsentAuthorised {
		t.Fatalf("just before expireAt: status %s, want AUTHORISED", got.Status)
	}
	e.clock.Advance(time.Millisecond)
	if got, _ := e.sim.Consent(c.ID); got.Status != klavi.ConsentExpired {
		t.Errorf("at expireAt: status %s, want EXPIRED", got.Status)
	}
	want := []string{EventLinkCreated, EventConsentAuthorised, EventConsentExpired}
	if names := e.events.names(); !reflect.DeepEqual(names, want) {
		t.Errorf("events = %v, want %v", names, want)
	}
}

func TestAccessorsReturnCopies(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t)
	c := e.authorisedConsent(t, tok, "personalTaxId", testCPF, "260")
	e.do(t, "POST", "/data/v1/personal/user-data", tok, `{"taxId":"12345678909","products":["all"],"productsCallbackURL":{"all":"https://x.example/r"}}`)

	l := e.sim.Links()[0]
	l.ProductsCallbackURL = nil
	l.ID = "changed"
	cs := e.sim.Consents()
	cs[0].PermissionsGranted[0] = "changed"
	rr := e.sim.ReportRequests()
	rr[0].Products[0] = "changed"
	rr[0].ProductsCallbackURL["all"] = "changed"

	if got, _ := e.sim.Link(c.LinkID); got.ID != c.LinkID {
		t.Errorf("link id = %s, want %s", got.ID, c.LinkID)
	}
	if got, _ := e.sim.Consent(c.ID); got.PermissionsGranted[0] != "ACCOUNTS_ALL" {
		t.Errorf("permission = %s, want ACCOUNTS_ALL", got.PermissionsGranted[0])
	}
	got := e.sim.ReportRequests()[0]
	if got.Products[0] != "all" || got.ProductsCallbackURL["all"] != "https://x.example/r" {
		t.Errorf("report request = %+v, want it unchanged", got)
	}
}

func TestOnEventMayCallTheSimulator(t *testing.T) {
	var (
		mu   sync.Mutex
		sim  *Simulator
		seen []int
	)
	e := newEnv(t, func(o *Options) {
		o.OnEvent = func(Event) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, len(sim.Links()))
		}
	})
	mu.Lock()
	sim = e.sim
	mu.Unlock()
	e.createLink(t, e.token(t), `{}`)
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(seen, []int{1}) {
		t.Errorf("links seen from OnEvent = %v, want [1]", seen)
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, nil)
	client := e.srv.Client()
	post := func(ctx context.Context, path, tok, body string) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+path, strings.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, b, err
	}
	const workers = 8
	errc := make(chan error, workers)
	for range workers {
		go func() {
			errc <- func() error {
				status, b, err := post(t.Context(), "/data/v1/auth", "", authBody)
				if err != nil || status != http.StatusOK {
					return fmt.Errorf("auth: %d %v", status, err)
				}
				var tr tokenResponse
				if err := json.Unmarshal(b, &tr); err != nil {
					return fmt.Errorf("decode token: %w", err)
				}
				status, b, err = post(t.Context(), "/data/v1/links", tr.AccessToken, `{"personalTaxId":"12345678909"}`)
				if err != nil || status != http.StatusOK {
					return fmt.Errorf("create link: %d %v", status, err)
				}
				var lr linkResponse
				if err := json.Unmarshal(b, &lr); err != nil {
					return fmt.Errorf("decode link: %w", err)
				}
				if _, err := e.sim.AuthoriseConsent(lr.LinkID, "260"); err != nil {
					return fmt.Errorf("authorise: %w", err)
				}
				status, _, err = post(t.Context(), "/data/v1/personal/user-data", tr.AccessToken, `{"taxId":"12345678909","products":["all"]}`)
				if err != nil || status != http.StatusOK {
					return fmt.Errorf("report request: %d %v", status, err)
				}
				return nil
			}()
		}()
	}
	for range workers {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if got := []int{len(e.sim.Links()), len(e.sim.Consents()), len(e.sim.ReportRequests())}; !reflect.DeepEqual(got, []int{workers, workers, workers}) {
		t.Errorf("links, consents, report requests = %v, want %d each", got, workers)
	}
	if n := len(e.sim.Requests()); n != 3*workers {
		t.Errorf("recorded requests = %d, want %d", n, 3*workers)
	}
}
