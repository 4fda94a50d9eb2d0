package hookreceiver

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBearer(t *testing.T) {
	t.Parallel()
	const token, next = "bearer-token-0123456789", "next-token-0123456789"
	v := newTestVerifier(t, SourceConfig{Verifier: VerifierBearer, Secrets: []string{token, next}})

	cases := []struct {
		name string
		auth []string
		want error
	}{
		{"first secret", []string{"Bearer " + token}, nil},
		{"second secret", []string{"Bearer " + next}, nil},
		{"lower-case scheme", []string{"bearer " + token}, nil},
		{"upper-case scheme", []string{"BEARER " + token}, nil},
		{"extra spaces", []string{"Bearer   " + token}, nil},
		{"wrong token", []string{"Bearer " + token + "x"}, ErrBadToken},
		{"prefix of token", []string{"Bearer " + token[:len(token)-1]}, ErrBadToken},
		{"token case", []string{"Bearer BEARER-TOKEN-0123456789"}, ErrBadToken},
		{"empty token", []string{"Bearer "}, ErrMissingToken},
		{"scheme only", []string{"Bearer"}, ErrMissingToken},
		{"basic auth", []string{"Basic dXNlcjpwYXNz"}, ErrMissingToken},
		{"token without scheme", []string{token}, ErrMissingToken},
		{"no space after scheme", []string{"Bearer\t" + token}, ErrMissingToken},
		{"no header", nil, ErrMissingToken},
		{"non-ASCII", []string{"Bearer tökén"}, ErrBadToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			for _, a := range tc.auth {
				h.Add("Authorization", a)
			}
			err := v.Verify(h, []byte("{}"), time.Now())
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			requireAuthErr(t, err, tc.want, token, next)
		})
	}
}

func TestNone(t *testing.T) {
	t.Parallel()
	_, err := NewVerifier(SourceConfig{Name: "open", Verifier: VerifierNone})
	require.Error(t, err, "none without allow_unsigned is a configuration error")
	require.Contains(t, err.Error(), "allow_unsigned")

	v := newTestVerifier(t, SourceConfig{Verifier: VerifierNone, AllowUnsigned: true})
	require.NoError(t, v.Verify(http.Header{}, []byte("anything"), time.Now()))
}

func TestNewVerifierRefusesMissingVerifier(t *testing.T) {
	t.Parallel()
	_, err := NewVerifier(SourceConfig{Name: "orders", Secrets: []string{"0123456789abcdef"}})
	require.ErrorIs(t, err, ErrNoVerifier)
	require.EqualError(t, err, "source orders has no verifier: set verifier (github, standard-webhooks, hmac-sha256, bearer) or verifier: none with allow_unsigned: true")
}

// TestSignRequestRoundTrip checks that what SignRequest produces verifies, and
// that it stops verifying once the body changes.
func TestSignRequestRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.Now()
	body := []byte(`{"action":"a","resource":"r","resource_id":"1"}`)
	for _, cfg := range []SourceConfig{
		{Verifier: VerifierGitHub, Secrets: []string{gitHubVectorSecret}},
		{Verifier: VerifierStandardWebhooks, Secrets: []string{swVectorSecret}},
		{Verifier: VerifierHMACSHA256, Secrets: []string{"generic-secret-0123456789"}, Encoding: EncodingBase64, Prefix: "sha256="},
		{Verifier: VerifierHMACSHA256, Secrets: []string{"generic-secret-0123456789"}},
		{Verifier: VerifierBearer, Secrets: []string{"bearer-token-0123456789"}},
		{Verifier: VerifierNone, AllowUnsigned: true},
	} {
		t.Run(cfg.Verifier, func(t *testing.T) {
			t.Parallel()
			cfg.Name = "signed"
			s, err := NewSource(cfg)
			require.NoError(t, err)
			h := http.Header{}
			h.Set(StandardWebhooksIDHeader, "msg_1")
			require.NoError(t, s.SignRequest(h, body, now))
			require.NoError(t, s.Verify(h, body, now))
			err = s.Verify(h, append(body, ' '), now)
			switch cfg.Verifier {
			case VerifierBearer, VerifierNone:
				require.NoError(t, err, "the body is not signed")
			default:
				require.ErrorIs(t, err, ErrBadSignature)
			}
		})
	}

	s, err := NewSource(SourceConfig{Name: "sw", Verifier: VerifierStandardWebhooks, Secrets: []string{swVectorSecret}})
	require.NoError(t, err)
	require.Error(t, s.SignRequest(http.Header{}, body, now), "standard-webhooks needs a webhook-id to sign")
}
