package hookreceiver

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// errorKind is a class of refusal; kindStatus maps each to its HTTP status.
type errorKind uint8

const (
	kindInvalid     errorKind = iota // the request can never succeed as sent
	kindAuth                         // missing or bad signature or token
	kindNotFound                     // unknown source
	kindMethod                       // not POST
	kindTooLarge                     // body over the source's limit
	kindMediaType                    // not JSON
	kindRateLimited                  // the source's token bucket is empty
	kindUnavailable                  // database unavailable, queue full, shutting down
	kindInternal                     // a bug: never expected
)

// kindStatus is the one table from error kinds to HTTP status codes.
var kindStatus = [...]int{
	kindInvalid:     http.StatusBadRequest,
	kindAuth:        http.StatusUnauthorized,
	kindNotFound:    http.StatusNotFound,
	kindMethod:      http.StatusMethodNotAllowed,
	kindTooLarge:    http.StatusRequestEntityTooLarge,
	kindMediaType:   http.StatusUnsupportedMediaType,
	kindRateLimited: http.StatusTooManyRequests,
	kindUnavailable: http.StatusServiceUnavailable,
	kindInternal:    http.StatusInternalServerError,
}

// hookError is a refusal: its kind gives the status, code and msg the JSON
// body {"error": msg, "code": code}.
type hookError struct {
	kind errorKind
	code string
	msg  string
	// retry, when set, is the Retry-After of this answer (the database's
	// circuit breaker says when it lets requests through again).
	retry time.Duration
}

func (e *hookError) Error() string { return e.code + ": " + e.msg }

func (e *hookError) status() int { return kindStatus[e.kind] }

// Codes of the receiver's own refusals (verifier and payload codes come from
// AuthError.Code and PayloadError.Code).
const (
	CodeUnknownSource    = "unknown_source"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeBodyTooLarge     = "body_too_large"
	CodeBodyReadFailed   = "body_read_failed"
	CodeUnsupportedType  = "unsupported_media_type"
	CodeRateLimited      = "rate_limited"
	CodeQueueFull        = "queue_full"
	CodeUnavailable      = "database_unavailable"
	CodeDatabaseError    = "database_error"
	CodeShuttingDown     = "shutting_down"
	CodeNotRunning       = "not_running"
	CodeRejected         = "rejected_by_database"
	CodeInternal         = "internal_error"
)

var (
	errUnknownSource = &hookError{kind: kindNotFound, code: CodeUnknownSource, msg: "no such webhook source: check the URL against the configured sources"}
	errMethod        = &hookError{kind: kindMethod, code: CodeMethodNotAllowed, msg: "webhooks are delivered with POST"}
	errTooLarge      = &hookError{kind: kindTooLarge, code: CodeBodyTooLarge, msg: "request body is larger than this source accepts"}
	errMediaType     = &hookError{kind: kindMediaType, code: CodeUnsupportedType, msg: "Content-Type must be application/json (or a +json type), charset utf-8 if given"}
	errRateLimited   = &hookError{kind: kindRateLimited, code: CodeRateLimited, msg: "too many requests for this source: retry after the time in Retry-After"}
	errQueueFull     = &hookError{kind: kindUnavailable, code: CodeQueueFull, msg: "the receiver is overloaded: retry after the time in Retry-After"}
	errUnavailable   = &hookError{kind: kindUnavailable, code: CodeUnavailable, msg: "the database is unavailable: nothing was stored; retry after the time in Retry-After"}
	errDatabase      = &hookError{kind: kindUnavailable, code: CodeDatabaseError, msg: "the database refused the write: nothing was stored; retry after the time in Retry-After"}
	errShuttingDown  = &hookError{kind: kindUnavailable, code: CodeShuttingDown, msg: "the receiver is shutting down: nothing was stored; retry after the time in Retry-After"}
	errNotRunning    = &hookError{kind: kindUnavailable, code: CodeNotRunning, msg: "the receiver is not running yet: nothing was stored; retry after the time in Retry-After"}
)

// writeError answers e. Retry-After goes with 429 and 503; retryAfter is
// its value in seconds.
func writeError(w http.ResponseWriter, e *hookError, retryAfter int) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	switch e.kind {
	case kindRateLimited, kindUnavailable:
		h.Set("Retry-After", strconv.Itoa(retryAfter))
	case kindMethod:
		h.Set("Allow", http.MethodPost)
	}
	body, err := json.Marshal(struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}{e.msg, e.code})
	if err != nil { // only strings: cannot happen
		body = []byte(`{"error":"internal error","code":"` + CodeInternal + `"}`)
	}
	w.WriteHeader(e.status())
	_, _ = w.Write(append(body, '\n'))
}

// writeStored answers a committed event: 202 when it is new, 200 with the
// first event's id when it is a redelivery.
func writeStored(w http.ResponseWriter, id uuid.UUID, duplicate bool) int {
	status := http.StatusAccepted
	if duplicate {
		status = http.StatusOK
	}
	var buf [64]byte
	b := append(buf[:0], `{"id":"`...)
	b = append(b, id.String()...)
	if duplicate {
		b = append(b, `","duplicate":true}`...)
	} else {
		b = append(b, `","duplicate":false}`...)
	}
	b = append(b, '\n')
	h := w.Header()
	h["Content-Type"] = []string{"application/json"} // canonical keys: no Set
	h["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return status
}
