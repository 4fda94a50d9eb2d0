package hookreceiver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// Encodings of an HMAC-SHA256 signature accepted by SourceConfig.Encoding.
const (
	EncodingHex    = "hex"
	EncodingBase64 = "base64"
)

// GitHub's signature header and its value prefix.
const (
	GitHubSignatureHeader = "X-Hub-Signature-256"
	gitHubSignaturePrefix = "sha256="
)

// hmacVerifier checks "<header>: <prefix><encoded HMAC-SHA256 of the raw body>".
// GitHub is this scheme with X-Hub-Signature-256, prefix "sha256=" and hex.
type hmacVerifier struct {
	keys     [][]byte
	header   string
	prefix   string
	encoding string
}

func newGitHubVerifier(secrets []string) *hmacVerifier {
	return newHMACVerifier(secrets, GitHubSignatureHeader, gitHubSignaturePrefix, EncodingHex)
}

func newHMACVerifier(secrets []string, header, prefix, encoding string) *hmacVerifier {
	v := &hmacVerifier{
		keys:     make([][]byte, len(secrets)),
		header:   http.CanonicalHeaderKey(header),
		prefix:   prefix,
		encoding: encoding,
	}
	for i, s := range secrets {
		v.keys[i] = []byte(s)
	}
	return v
}

func (v *hmacVerifier) Verify(h http.Header, body []byte, _ time.Time) error {
	value := h.Get(v.header)
	if value == "" {
		return authErr(ErrMissingSignature, "no %s header", v.header)
	}
	got, ok := v.decode(value)
	if !ok {
		return authErr(ErrMalformedSignature, "%s is not %s%s-encoded HMAC-SHA256", v.header, v.prefix, v.encoding)
	}
	// Check every key rather than stopping at the first match, so the time
	// taken does not depend on which key matched.
	match := false
	for _, key := range v.keys {
		if hmac.Equal(got, hmacSHA256(key, body)) {
			match = true
		}
	}
	if !match {
		return authErr(ErrBadSignature, "%s matches none of %d configured secrets", v.header, len(v.keys))
	}
	return nil
}

// decode strips the prefix and decodes the signature to its 32 bytes. Hex
// accepts either letter case; base64 is the standard alphabet with or without
// padding. Anything else, including an encoding of another length, is
// malformed.
func (v *hmacVerifier) decode(value string) ([]byte, bool) {
	enc, ok := strings.CutPrefix(value, v.prefix)
	if !ok {
		return nil, false
	}
	switch v.encoding {
	case EncodingHex:
		if len(enc) != hex.EncodedLen(sha256.Size) {
			return nil, false
		}
		b, err := hex.DecodeString(enc)
		return b, err == nil
	case EncodingBase64:
		// 32 bytes are 43 characters plus one "=" of padding, which senders
		// may omit. Strict decoding then leaves exactly one accepted text per
		// signature; the decoder would skip CR and LF, so refuse them first.
		enc, _ = strings.CutSuffix(enc, "=")
		if len(enc) != base64.RawStdEncoding.EncodedLen(sha256.Size) || strings.ContainsAny(enc, "\r\n") {
			return nil, false
		}
		b, err := base64.RawStdEncoding.Strict().DecodeString(enc)
		return b, err == nil && len(b) == sha256.Size
	}
	return nil, false
}

// sign returns the header value a sender would send for body with key.
func (v *hmacVerifier) sign(key, body []byte) string {
	mac := hmacSHA256(key, body)
	if v.encoding == EncodingBase64 {
		return v.prefix + base64.StdEncoding.EncodeToString(mac)
	}
	return v.prefix + hex.EncodeToString(mac)
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}
