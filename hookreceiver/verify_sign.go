package hookreceiver

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// SignRequest sets on h the headers a legitimate sender of this source would
// send with body, signed with the source's first secret: the tool behind a
// ready-to-paste curl in development, load generators and tests. For
// standard-webhooks h must already carry a webhook-id, and webhook-timestamp is
// set from now. For bearer it sets the Authorization header; for none it does
// nothing.
func (s *Source) SignRequest(h http.Header, body []byte, now time.Time) error {
	if len(s.cfg.Secrets) == 0 {
		return nil
	}
	secret := s.cfg.Secrets[0]
	switch v := s.verifier.(type) {
	case *hmacVerifier:
		h.Set(v.header, v.sign([]byte(secret), body))
	case *standardWebhooksVerifier:
		id := h.Get(StandardWebhooksIDHeader)
		if id == "" {
			return errors.New("sign a standard-webhooks request: set the " + StandardWebhooksIDHeader + " header first")
		}
		ts := strconv.FormatInt(now.Unix(), 10)
		h.Set(StandardWebhooksTimestampHeader, ts)
		h.Set(StandardWebhooksSignatureHeader, v.sign(v.keys[0], id, ts, body))
	case *bearerVerifier:
		h.Set("Authorization", "Bearer "+secret)
	}
	return nil
}
