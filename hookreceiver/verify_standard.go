package hookreceiver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks (https://www.standardwebhooks.com) headers and secret prefix.
const (
	StandardWebhooksIDHeader        = "Webhook-Id"
	StandardWebhooksTimestampHeader = "Webhook-Timestamp"
	StandardWebhooksSignatureHeader = "Webhook-Signature"
	StandardWebhooksSecretPrefix    = "whsec_"
)

// standardWebhooksVerifier implements the symmetric (v1, HMAC-SHA256) scheme of
// the Standard Webhooks specification. The signed content is
// "{webhook-id}.{webhook-timestamp}.{body}"; webhook-signature holds one or more
// space-separated "v1,<base64>" signatures, any of which may match any key.
// Other versions (such as the asymmetric "v1a") are ignored.
type standardWebhooksVerifier struct {
	keys      [][]byte
	tolerance time.Duration
}

func newStandardWebhooksVerifier(secrets []string, tolerance time.Duration) (*standardWebhooksVerifier, error) {
	v := &standardWebhooksVerifier{keys: make([][]byte, len(secrets)), tolerance: tolerance}
	for i, s := range secrets {
		key, err := decodeStandardWebhooksSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secrets[%d]: %w", i, err)
		}
		v.keys[i] = key
	}
	return v, nil
}

var errSecretNotBase64 = errors.New("a standard-webhooks secret must be whsec_ followed by base64 (or the base64 alone)")

// decodeStandardWebhooksSecret returns the key bytes of a "whsec_<base64>"
// secret or of the bare base64, padded or not.
func decodeStandardWebhooksSecret(s string) ([]byte, error) {
	raw := strings.TrimPrefix(s, StandardWebhooksSecretPrefix)
	if raw == "" || strings.ContainsAny(raw, "\r\n") {
		return nil, errSecretNotBase64
	}
	enc := base64.StdEncoding
	if !strings.HasSuffix(raw, "=") {
		enc = base64.RawStdEncoding
	}
	key, err := enc.DecodeString(raw)
	if err != nil {
		return nil, errSecretNotBase64
	}
	return key, nil
}

func (v *standardWebhooksVerifier) Verify(h http.Header, body []byte, now time.Time) error {
	id := h.Get(StandardWebhooksIDHeader)
	if id == "" {
		return authErr(ErrMissingSignature, "no %s header", StandardWebhooksIDHeader)
	}
	ts := h.Get(StandardWebhooksTimestampHeader)
	if ts == "" {
		return authErr(ErrMissingSignature, "no %s header", StandardWebhooksTimestampHeader)
	}
	sigs := h.Values(StandardWebhooksSignatureHeader)
	if len(sigs) == 0 || (len(sigs) == 1 && sigs[0] == "") {
		return authErr(ErrMissingSignature, "no %s header", StandardWebhooksSignatureHeader)
	}
	sec, ok := parseUnixSeconds(ts)
	if !ok {
		return authErr(ErrMalformedSignature, "%s is not a Unix time in seconds", StandardWebhooksTimestampHeader)
	}
	if skew := now.Sub(time.Unix(sec, 0)); skew > v.tolerance || skew < -v.tolerance {
		return authErr(ErrTimestampOutOfRange, "%s is %s from the receive time; tolerance is ±%s",
			StandardWebhooksTimestampHeader, skew.Round(time.Second), v.tolerance)
	}

	expected := make([][]byte, len(v.keys))
	for i, key := range v.keys {
		expected[i] = []byte(v.sign(key, id, ts, body))
	}
	candidates := 0
	match := false
	for _, value := range sigs {
		for token := range strings.SplitSeq(value, " ") {
			if !strings.HasPrefix(token, "v1,") {
				continue // empty token, or another version such as v1a
			}
			candidates++
			for _, want := range expected {
				// Compare the whole "v1,<base64>" text in constant time.
				if hmac.Equal([]byte(token), want) {
					match = true
				}
			}
		}
	}
	if candidates == 0 {
		return authErr(ErrMalformedSignature, "%s has no v1 signature", StandardWebhooksSignatureHeader)
	}
	if !match {
		return authErr(ErrBadSignature, "none of %d v1 signatures matches any of %d configured secrets", candidates, len(v.keys))
	}
	return nil
}

// sign returns the "v1,<base64>" signature of id, ts and body under key.
func (v *standardWebhooksVerifier) sign(key []byte, id, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// parseUnixSeconds accepts 1 to 18 ASCII digits (no sign, no spaces), which
// always fit an int64. The timestamp is signed as sent, so it is not
// normalised.
func parseUnixSeconds(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
