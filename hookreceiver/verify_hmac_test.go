package hookreceiver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// GitHub's published example (docs: "Validating webhook deliveries").
const (
	gitHubVectorSecret    = "It's a Secret to Everybody"
	gitHubVectorPayload   = "Hello, World!"
	gitHubVectorSignature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

func newTestVerifier(t *testing.T, cfg SourceConfig) Verifier {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	v, err := NewVerifier(cfg)
	require.NoError(t, err)
	return v
}

func headerWith(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// requireAuthErr checks that err is the sentinel and that its text never
// reveals the secrets.
func requireAuthErr(t *testing.T, err, sentinel error, secrets ...string) {
	t.Helper()
	require.ErrorIs(t, err, sentinel)
	var ae *AuthError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, sentinel.(*AuthError).Code, AuthCode(err))
	for _, s := range secrets {
		require.NotContains(t, err.Error(), s)
	}
}

func TestGitHubPublishedVector(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, SourceConfig{Verifier: VerifierGitHub, Secrets: []string{gitHubVectorSecret}})
	now := time.Now()

	require.NoError(t, v.Verify(headerWith(GitHubSignatureHeader, gitHubVectorSignature), []byte(gitHubVectorPayload), now))
	// Header names are case-insensitive; hex letter case is not significant.
	upper := "sha256=" + strings.ToUpper(strings.TrimPrefix(gitHubVectorSignature, "sha256="))
	h := http.Header{}
	h.Set("x-hub-signature-256", upper)
	require.NoError(t, v.Verify(h, []byte(gitHubVectorPayload), now))

	cases := []struct {
		name   string
		header http.Header
		body   string
		want   error
	}{
		{"tampered body", headerWith(GitHubSignatureHeader, gitHubVectorSignature), "Hello, World?", ErrBadSignature},
		{"body with trailing newline", headerWith(GitHubSignatureHeader, gitHubVectorSignature), gitHubVectorPayload + "\n", ErrBadSignature},
		{"tampered signature", headerWith(GitHubSignatureHeader, gitHubVectorSignature[:len(gitHubVectorSignature)-1]+"f"), gitHubVectorPayload, ErrBadSignature},
		{"no header", http.Header{}, gitHubVectorPayload, ErrMissingSignature},
		{"empty header", headerWith(GitHubSignatureHeader, ""), gitHubVectorPayload, ErrMissingSignature},
		{"sha1 header only", headerWith("X-Hub-Signature", "sha1=0123456789abcdef0123456789abcdef01234567"), gitHubVectorPayload, ErrMissingSignature},
		{"no prefix", headerWith(GitHubSignatureHeader, strings.TrimPrefix(gitHubVectorSignature, "sha256=")), gitHubVectorPayload, ErrMalformedSignature},
		{"wrong prefix", headerWith(GitHubSignatureHeader, "sha1="+strings.TrimPrefix(gitHubVectorSignature, "sha256=")), gitHubVectorPayload, ErrMalformedSignature},
		{"short", headerWith(GitHubSignatureHeader, gitHubVectorSignature[:len(gitHubVectorSignature)-2]), gitHubVectorPayload, ErrMalformedSignature},
		{"long", headerWith(GitHubSignatureHeader, gitHubVectorSignature+"00"), gitHubVectorPayload, ErrMalformedSignature},
		{"not hex", headerWith(GitHubSignatureHeader, "sha256="+strings.Repeat("zz", 32)), gitHubVectorPayload, ErrMalformedSignature},
		{"base64 instead of hex", headerWith(GitHubSignatureHeader, "sha256="+base64.StdEncoding.EncodeToString(make([]byte, 32))), gitHubVectorPayload, ErrMalformedSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			requireAuthErr(t, v.Verify(tc.header, []byte(tc.body), now), tc.want, gitHubVectorSecret)
		})
	}
}

func TestGitHubRotation(t *testing.T) {
	t.Parallel()
	const oldSecret, newSecret = "old-secret-0123456789", "new-secret-0123456789"
	body := []byte(`{"zen":"Keep it logically awesome."}`)
	sig := func(secret string) string { return "sha256=" + hex.EncodeToString(hmacSHA256([]byte(secret), body)) }

	both := newTestVerifier(t, SourceConfig{Verifier: VerifierGitHub, Secrets: []string{newSecret, oldSecret}})
	require.NoError(t, both.Verify(headerWith(GitHubSignatureHeader, sig(oldSecret)), body, time.Now()))
	require.NoError(t, both.Verify(headerWith(GitHubSignatureHeader, sig(newSecret)), body, time.Now()))

	onlyNew := newTestVerifier(t, SourceConfig{Verifier: VerifierGitHub, Secrets: []string{newSecret}})
	requireAuthErr(t, onlyNew.Verify(headerWith(GitHubSignatureHeader, sig(oldSecret)), body, time.Now()), ErrBadSignature, newSecret)
}

func TestHMACSHA256(t *testing.T) {
	t.Parallel()
	const secret = "generic-secret-0123456789"
	body := []byte(`{"action":"created","resource":"order","resource_id":"42"}`)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	sum := mac.Sum(nil)
	hexSig := hex.EncodeToString(sum)
	b64Sig := base64.StdEncoding.EncodeToString(sum)
	require.True(t, strings.HasSuffix(b64Sig, "="), "a 32-byte base64 signature ends in one pad")

	cases := []struct {
		name  string
		cfg   SourceConfig
		value string
		want  error // nil: accepted
	}{
		{"hex default header", SourceConfig{}, hexSig, nil},
		{"hex upper case", SourceConfig{}, strings.ToUpper(hexSig), nil},
		{"hex with prefix", SourceConfig{Prefix: "sha256="}, "sha256=" + hexSig, nil},
		{"hex prefix missing", SourceConfig{Prefix: "sha256="}, hexSig, ErrMalformedSignature},
		{"hex given base64", SourceConfig{}, b64Sig, ErrMalformedSignature},
		{"hex of another body", SourceConfig{}, hex.EncodeToString(hmacSHA256([]byte(secret), []byte("{}"))), ErrBadSignature},
		{"hex under another key", SourceConfig{}, hex.EncodeToString(hmacSHA256([]byte("another-secret-0123456789"), body)), ErrBadSignature},
		{"base64 padded", SourceConfig{Encoding: EncodingBase64}, b64Sig, nil},
		{"base64 unpadded", SourceConfig{Encoding: EncodingBase64}, strings.TrimRight(b64Sig, "="), nil},
		{"base64 double pad", SourceConfig{Encoding: EncodingBase64}, b64Sig + "=", ErrMalformedSignature},
		{"base64 url alphabet", SourceConfig{Encoding: EncodingBase64}, base64.URLEncoding.EncodeToString(sum), expectIfDiffers(b64Sig, base64.URLEncoding.EncodeToString(sum))},
		{"base64 with newline", SourceConfig{Encoding: EncodingBase64}, b64Sig[:10] + "\n" + b64Sig[10:len(b64Sig)-1], ErrMalformedSignature},
		{"base64 given hex", SourceConfig{Encoding: EncodingBase64}, hexSig, ErrMalformedSignature},
		{"base64 with prefix", SourceConfig{Encoding: EncodingBase64, Prefix: "v1="}, "v1=" + b64Sig, nil},
		{"base64 tampered", SourceConfig{Encoding: EncodingBase64}, "A" + b64Sig[1:], ErrBadSignature},
		{"named header", SourceConfig{Header: "X-Acme-Signature"}, hexSig, nil},
		{"empty", SourceConfig{}, "", ErrMissingSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.Verifier = VerifierHMACSHA256
			cfg.Secrets = []string{secret}
			v := newTestVerifier(t, cfg)
			header := cmpOr(cfg.Header, HMACHeaderDefault)
			err := v.Verify(headerWith(header, tc.value), body, time.Now())
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			requireAuthErr(t, err, tc.want, secret)
		})
	}

	t.Run("signature in another header", func(t *testing.T) {
		t.Parallel()
		v := newTestVerifier(t, SourceConfig{Verifier: VerifierHMACSHA256, Secrets: []string{secret}, Header: "X-Acme-Signature"})
		requireAuthErr(t, v.Verify(headerWith(HMACHeaderDefault, hexSig), body, time.Now()), ErrMissingSignature, secret)
	})
}

// expectIfDiffers returns ErrMalformedSignature when the URL-safe encoding
// differs from the standard one (it uses '-' and '_'), else nil.
func expectIfDiffers(std, url string) error {
	if std == url {
		return nil
	}
	return ErrMalformedSignature
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestSentinelsHaveDistinctCodes(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, e := range []*AuthError{ErrMissingSignature, ErrMalformedSignature, ErrBadSignature, ErrTimestampOutOfRange, ErrMissingToken, ErrBadToken} {
		require.NotEmpty(t, e.Code)
		require.False(t, seen[e.Code], e.Code)
		seen[e.Code] = true
	}
	require.Empty(t, AuthCode(errors.New("other")))
	require.Empty(t, AuthCode(nil))
}
