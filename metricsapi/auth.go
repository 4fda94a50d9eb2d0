package metricsapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/omnibridge/omnibridge/store"
)

// AuditAuthFailed is the audit event type of a refused API request.
const AuditAuthFailed = "api.auth_failed"

// Reasons of an authentication failure: the reason label of
// omnibridge_metricsapi_auth_failures_total and client_info.reason of the
// audit row.
const (
	// AuthMissing: no Authorization header.
	AuthMissing = "missing"
	// AuthMalformed: an Authorization header that is not one "Bearer <token>".
	AuthMalformed = "malformed"
	// AuthInvalid: a bearer token that is not the configured one.
	AuthInvalid = "invalid"
)

// maxAuditText bounds the request details copied into an audit row.
const maxAuditText = 256

// authenticator checks bearer tokens. A nil authenticator lets everything
// through (AllowNoToken without a token).
type authenticator struct {
	digest [sha256.Size]byte
}

func newAuthenticator(token string) *authenticator {
	if token == "" {
		return nil
	}
	return &authenticator{digest: sha256.Sum256([]byte(token))}
}

// check returns "" when r carries the token, else the reason it fails. The
// comparison runs on SHA-256 digests in constant time, so neither the
// token's content nor its length shows in the response time.
func (au *authenticator) check(r *http.Request) string {
	if au == nil {
		return ""
	}
	vals := r.Header.Values("Authorization")
	switch {
	case len(vals) == 0:
		return AuthMissing
	case len(vals) > 1:
		return AuthMalformed
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || !isToken68(token) {
		return AuthMalformed
	}
	got := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(got[:], au.digest[:]) != 1 {
		return AuthInvalid
	}
	return ""
}

// isToken68 reports whether s is an RFC 7235 token68: the characters a
// bearer token may hold.
func isToken68(s string) bool {
	if s == "" {
		return false
	}
	end := len(s)
	for end > 0 && s[end-1] == '=' {
		end--
	}
	if end == 0 {
		return false
	}
	for i := range end {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// authMessages are the 401 bodies; they say how to fix the request without
// telling an attacker anything about the token.
var authMessages = map[string]string{
	AuthMissing:   "missing bearer token: send Authorization: Bearer <token> (services.model_metrics.token)",
	AuthMalformed: "malformed Authorization header: want exactly one \"Bearer <token>\"",
	AuthInvalid:   "invalid bearer token",
}

// refuse answers 401, counts the failure and audits it, rate-limited per
// remote IP so that a flood writes a bounded number of rows.
func (a *API) refuse(w http.ResponseWriter, r *http.Request, reason string) {
	a.m.authFailures.WithLabelValues(reason).Inc()
	ip := remoteIP(r)
	if a.audit != nil {
		a.audit.WriteLimited(AuditAuthFailed+" "+ip, store.AuditEvent{
			Type:    AuditAuthFailed,
			Success: false,
			ClientInfo: map[string]any{
				"remote_addr": ip,
				"method":      r.Method,
				"path":        clip(r.URL.Path),
				"reason":      reason,
				"user_agent":  clip(r.UserAgent()),
			},
			ErrorDetails: authMessages[reason],
		})
	}
	a.log.Debug("metricsapi: request refused", slog.String("remote_addr", ip),
		slog.String("path", r.URL.Path), slog.String("reason", reason))
	errCode := "invalid_token"
	if reason == AuthMissing {
		errCode = "invalid_request"
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="omnibridge", error="`+errCode+`"`)
	writeJSON(w, http.StatusUnauthorized, errorBody{Error: authMessages[reason], Code: CodeUnauthorized})
}

// remoteIP is the address of the peer. Forwarding headers are not trusted:
// they are the client's to set, and the rate limit of the audit rows keys on
// this address.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clip bounds client-controlled text copied into the audit log.
func clip(s string) string {
	if len(s) <= maxAuditText {
		return s
	}
	cut := maxAuditText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
