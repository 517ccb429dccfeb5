package klavireport_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
)

// BenchmarkParseEnvelope5MB measures reading the envelope of a 5 MB
// pretty-printed report, whose externalInfo sits after the product data.
func BenchmarkParseEnvelope5MB(b *testing.B) {
	body := klavireporttest.Synthetic(5<<20, 1, "")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := klavireport.ParseEnvelope(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseEnvelopeDecoderWalk5MB measures the alternative that was
// not chosen: a json.Decoder token walk that skips non-envelope values. It
// copies the body through the decoder's buffer and allocates every string
// and number token it skips.
func BenchmarkParseEnvelopeDecoderWalk5MB(b *testing.B) {
	body := klavireporttest.Synthetic(5<<20, 1, "")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decoderWalk(body); err != nil {
			b.Fatal(err)
		}
	}
}

func decoderWalk(body []byte) (klavireport.Envelope, error) {
	var env klavireport.Envelope
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return env, klavireport.ErrMalformed
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return env, klavireport.ErrMalformed
		}
		key, _ := tok.(string)
		switch key {
		case "productReportId":
			err = dec.Decode(&env.ProductReportID)
		case "requestId":
			err = dec.Decode(&env.RequestID)
		case "productName":
			err = dec.Decode(&env.ProductName)
		case "externalInfo":
			err = dec.Decode(&env.ExternalInfo)
		case "links":
			var links []struct {
				LinkID string `json:"linkId"`
			}
			err = dec.Decode(&links)
			for _, l := range links {
				env.LinkIDs = append(env.LinkIDs, l.LinkID)
			}
		default:
			err = skipValue(dec)
		}
		if err != nil {
			return env, klavireport.ErrMalformed
		}
	}
	if env.ProductReportID == "" {
		return env, errors.New("no report id")
	}
	return env, nil
}

func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}
