package webhooksig_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

func ExampleVerifier_VerifyHeaders() {
	secret := []byte("secretKey from the credentials secret")
	body := []byte(`[{"eventId":"1495468585434-0e73d1719173766fe4dfe1a8","eventName":"link_created"}]`)
	at := time.Unix(1740716924, 0)
	sig, ts := webhooksig.Sign(secret, body, at)

	// API Gateway HTTP APIs deliver header names in lower case.
	headers := map[string]string{"x-klavi-signature": sig, "x-klavi-timestamp": ts}
	v := webhooksig.Verifier{Now: func() time.Time { return at.Add(time.Minute) }}
	fmt.Println(v.VerifyHeaders(secret, body, headers))

	headers["x-klavi-signature"] = "0" + sig[1:]
	err := v.VerifyHeaders(secret, body, headers)
	fmt.Println(errors.Is(err, webhooksig.ErrInvalidSignature))
	// Output:
	// <nil>
	// true
}
