package hookreceiver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The example of the Standard Webhooks reference libraries' tests
// (libraries/go/webhook_test.go, TestWebhookSign).
const (
	swVectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swVectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	swVectorTimestamp = 1614265330
	swVectorPayload   = `{"test": 2432232314}`
	swVectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// swSign signs as the specification describes, independently of the code
// under test: HMAC-SHA256 over "{id}.{timestamp}.{body}" with the base64
// key after "whsec_", base64-encoded, prefixed "v1,".
func swSign(t testing.TB, secret, id string, ts int64, body []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.%s", id, ts, body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func swHeader(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", sig)
	return h
}

func TestStandardWebhooksPublishedVector(t *testing.T) {
	t.Parallel()
	require.Equal(t, swVectorSignature, swSign(t, swVectorSecret, swVectorID, swVectorTimestamp, []byte(swVectorPayload)),
		"the test's own signer agrees with the published vector")

	v := newTestVerifier(t, SourceConfig{Verifier: VerifierStandardWebhooks, Secrets: []string{swVectorSecret}})
	at := time.Unix(swVectorTimestamp, 0)
	require.NoError(t, v.Verify(swHeader(swVectorID, swVectorTimestamp, swVectorSignature), []byte(swVectorPayload), at))

	// The same key without the whsec_ prefix.
	raw := newTestVerifier(t, SourceConfig{Verifier: VerifierStandardWebhooks, Secrets: []string{strings.TrimPrefix(swVectorSecret, "whsec_")}})
	require.NoError(t, raw.Verify(swHeader(swVectorID, swVectorTimestamp, swVectorSignature), []byte(swVectorPayload), at))

	// Tampering with any signed part fails.
	requireAuthErr(t, v.Verify(swHeader(swVectorID, swVectorTimestamp, swVectorSignature), []byte(`{"test": 2432232315}`), at), ErrBadSignature, swVectorSecret)
	requireAuthErr(t, v.Verify(swHeader(swVectorID+"x", swVectorTimestamp, swVectorSignature), []byte(swVectorPayload), at), ErrBadSignature, swVectorSecret)
	requireAuthErr(t, v.Verify(swHeader(swVectorID, swVectorTimestamp+1, swVectorSignature), []byte(swVectorPayload), at), ErrBadSignature, swVectorSecret)
}

func TestStandardWebhooks(t *testing.T) {
	t.Parallel()
	var (
		secret  = "whsec_" + base64.StdEncoding.EncodeToString([]byte("secret-key-for-tests-0123456789"))
		rotated = "whsec_" + base64.StdEncoding.EncodeToString([]byte("new-secret-key-for-tests-012345"))
	)
	const id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
	body := []byte(`{"type":"invoice.paid","timestamp":"2026-01-02T03:04:05Z","data":{"id":"inv_1"}}`)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ts := now.Unix()
	good := swSign(t, secret, id, ts, body)
	v := newTestVerifier(t, SourceConfig{Verifier: VerifierStandardWebhooks, Secrets: []string{secret}})

	cases := []struct {
		name   string
		header http.Header
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", swHeader(id, ts, good), body, now, nil},
		{"valid 5 min late", swHeader(id, ts, good), body, now.Add(5 * time.Minute), nil},
		{"valid 5 min early", swHeader(id, ts, good), body, now.Add(-5 * time.Minute), nil},
		{"expired", swHeader(id, ts, good), body, now.Add(5*time.Minute + time.Second), ErrTimestampOutOfRange},
		{"from the future", swHeader(id, ts, good), body, now.Add(-5*time.Minute - time.Second), ErrTimestampOutOfRange},
		{"far future", swHeader(id, 1<<40, swSign(t, secret, id, 1<<40, body)), body, now, ErrTimestampOutOfRange},
		{"epoch", swHeader(id, 0, swSign(t, secret, id, 0, body)), body, now, ErrTimestampOutOfRange},
		{"tampered body", swHeader(id, ts, good), append([]byte(" "), body...), now, ErrBadSignature},
		{"tampered signature", swHeader(id, ts, tamper(good, 10)), body, now, ErrBadSignature},
		{"other id", swHeader("msg_other", ts, good), body, now, ErrBadSignature},
		{"signed by another key", swHeader(id, ts, swSign(t, rotated, id, ts, body)), body, now, ErrBadSignature},
		{"several, one valid", swHeader(id, ts, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "+good+" v1,AAAA"), body, now, nil},
		{"double spaces", swHeader(id, ts, "  v1,AAAA  "+good+"  "), body, now, nil},
		{"only unknown versions", swHeader(id, ts, "v1a,"+good[3:]+" v2,"+good[3:]), body, now, ErrMalformedSignature},
		{"v1a carrying the v1 value", swHeader(id, ts, "v1a,"+good[3:]), body, now, ErrMalformedSignature},
		{"no version", swHeader(id, ts, good[3:]), body, now, ErrMalformedSignature},
		{"unpadded", swHeader(id, ts, strings.TrimRight(good, "=")), body, now, ErrBadSignature},
		{"missing id", dropHeader(swHeader(id, ts, good), "webhook-id"), body, now, ErrMissingSignature},
		{"missing timestamp", dropHeader(swHeader(id, ts, good), "webhook-timestamp"), body, now, ErrMissingSignature},
		{"missing signature", dropHeader(swHeader(id, ts, good), "webhook-signature"), body, now, ErrMissingSignature},
		{"empty signature", swHeader(id, ts, ""), body, now, ErrMissingSignature},
		{"timestamp with sign", setHeader(swHeader(id, ts, good), "webhook-timestamp", "+"+strconv.FormatInt(ts, 10)), body, now, ErrMalformedSignature},
		{"timestamp negative", setHeader(swHeader(id, ts, good), "webhook-timestamp", "-1"), body, now, ErrMalformedSignature},
		{"timestamp in ms", setHeader(swHeader(id, ts, good), "webhook-timestamp", strconv.FormatInt(now.UnixMilli(), 10)), body, now, ErrTimestampOutOfRange},
		{"timestamp float", setHeader(swHeader(id, ts, good), "webhook-timestamp", strconv.FormatInt(ts, 10)+".0"), body, now, ErrMalformedSignature},
		{"timestamp huge", setHeader(swHeader(id, ts, good), "webhook-timestamp", strings.Repeat("9", 30)), body, now, ErrMalformedSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := v.Verify(tc.header, tc.body, tc.now)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			requireAuthErr(t, err, tc.want, secret, strings.TrimPrefix(secret, "whsec_"))
		})
	}

	t.Run("rotated secret with two signatures", func(t *testing.T) {
		t.Parallel()
		// During rotation the sender signs with both keys; a receiver that
		// knows either one accepts.
		both := swSign(t, rotated, id, ts, body) + " " + good
		for _, secrets := range [][]string{{secret}, {rotated}, {rotated, secret}} {
			v := newTestVerifier(t, SourceConfig{Verifier: VerifierStandardWebhooks, Secrets: secrets})
			require.NoError(t, v.Verify(swHeader(id, ts, both), body, now), "secrets %d", len(secrets))
		}
		// A receiver with both keys accepts a sender that signs with either.
		v := newTestVerifier(t, SourceConfig{Verifier: VerifierStandardWebhooks, Secrets: []string{rotated, secret}})
		require.NoError(t, v.Verify(swHeader(id, ts, good), body, now))
		require.NoError(t, v.Verify(swHeader(id, ts, swSign(t, rotated, id, ts, body)), body, now))
	})

	t.Run("signatures split over two header lines", func(t *testing.T) {
		t.Parallel()
		h := swHeader(id, ts, "v1,AAAA")
		h.Add("webhook-signature", good)
		require.NoError(t, v.Verify(h, body, now))
	})

	t.Run("configured tolerance", func(t *testing.T) {
		t.Parallel()
		strict := newTestVerifier(t, SourceConfig{Verifier: VerifierStandardWebhooks, Secrets: []string{secret}, Tolerance: 30 * time.Second})
		require.NoError(t, strict.Verify(swHeader(id, ts, good), body, now.Add(30*time.Second)))
		requireAuthErr(t, strict.Verify(swHeader(id, ts, good), body, now.Add(31*time.Second)), ErrTimestampOutOfRange)
	})
}

// tamper replaces the character at i with another base64 character.
func tamper(sig string, i int) string {
	c := byte('A')
	if sig[i] == 'A' {
		c = 'B'
	}
	return sig[:i] + string(c) + sig[i+1:]
}

func dropHeader(h http.Header, name string) http.Header {
	h.Del(name)
	return h
}

func setHeader(h http.Header, name, value string) http.Header {
	h.Set(name, value)
	return h
}

func TestStandardWebhooksSecretParsing(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdefghijklmnopqrstuv")  // 32 bytes
	std := base64.StdEncoding.EncodeToString(key[:31]) // ends in "="
	cases := []struct {
		secret string
		want   []byte // nil: refused
	}{
		{"whsec_" + base64.StdEncoding.EncodeToString(key), key},
		{base64.StdEncoding.EncodeToString(key), key},
		{"whsec_" + std, key[:31]},
		{"whsec_" + strings.TrimRight(std, "="), key[:31]},
		{"whsec_", nil},
		{"whsec_not base64!", nil},
		{"whsec_" + base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe}), nil},
		{"whsec_" + std[:10] + "\n" + std[10:], nil},
		{"whsec_whsec_" + base64.StdEncoding.EncodeToString(key), nil},
	}
	for _, tc := range cases {
		got, err := decodeStandardWebhooksSecret(tc.secret)
		if tc.want == nil {
			require.Error(t, err, "%q", tc.secret)
			if rest := strings.TrimPrefix(tc.secret, "whsec_"); rest != "" {
				require.NotContains(t, err.Error(), rest)
			}
			continue
		}
		require.NoError(t, err, "%q", tc.secret)
		require.Equal(t, tc.want, got, "%q", tc.secret)
	}
}
