package hookreceiver

import (
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/omnibridge/omnibridge/store"
)

// statusClientClosed labels requests whose client went away before the answer
// (nginx's convention); the event may still have been committed.
const statusClientClosed = 499

// serveUnknown answers paths under /hooks/ that name no source.
func (r *Receiver) serveUnknown(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	writeError(w, errUnknownSource, r.retryAfter)
	r.count(unknownSourceLabel, http.StatusNotFound, start)
}

// serveHook is POST /hooks/{source}.
func (r *Receiver) serveHook(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	src := r.sources[req.PathValue("source")]
	if src == nil {
		writeError(w, errUnknownSource, r.retryAfter)
		r.count(unknownSourceLabel, http.StatusNotFound, start)
		return
	}
	status := r.handle(w, req, src)
	switch status {
	case http.StatusAccepted:
		src.accepted.Inc()
	case http.StatusOK:
		src.duplicates.Inc()
	default:
		r.metrics.requests.WithLabelValues(src.Name(), strconv.Itoa(status)).Inc()
	}
	src.duration.Observe(time.Since(start).Seconds())
}

func (r *Receiver) count(source string, status int, start time.Time) {
	r.metrics.requests.WithLabelValues(source, strconv.Itoa(status)).Inc()
	r.metrics.duration.WithLabelValues(source).Observe(time.Since(start).Seconds())
}

// handle takes a request to a known source through the checks, in order of
// cost: method, Content-Type, declared length, the database's breaker, queue
// room, body (read up to the limit), signature, rate limit (after the
// signature, so that unsigned floods cannot spend a sender's tokens),
// payload; then it queues the event and waits for its batch. It returns the
// status it answered.
func (r *Receiver) handle(w http.ResponseWriter, req *http.Request, src *sourceState) int {
	fail := func(e *hookError) int {
		retry := r.retryAfter
		switch {
		case e.retry > 0:
			retry = retryAfterSeconds(e.retry)
		case e.kind == kindRateLimited:
			retry = src.retryAfter
		}
		writeError(w, e, retry)
		return e.status()
	}
	if req.Method != http.MethodPost {
		return fail(errMethod)
	}
	if !jsonMediaType(req.Header.Get("Content-Type")) {
		return fail(errMediaType)
	}
	if req.ContentLength > src.bodyLimit {
		return refuseBody(w, fail) // before reading any of it
	}
	if d := r.downFor(time.Now()); d > 0 {
		return fail(&hookError{kind: kindUnavailable, code: CodeUnavailable, msg: errUnavailable.msg, retry: d})
	}
	if r.queue.saturated(max(req.ContentLength, 0) + pendingOverhead) {
		return fail(errQueueFull)
	}
	body, err := readBody(w, req, src.bodyLimit)
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			return refuseBody(w, fail) // having read limit + 1 bytes
		}
		return fail(&hookError{kind: kindInvalid, code: CodeBodyReadFailed, msg: "could not read the request body: " + err.Error()})
	}
	if err := src.Verify(req.Header, body, time.Now()); err != nil {
		r.authFailed(req, src, err)
		code := AuthCode(err)
		if code == "" {
			code = "auth_failed"
		}
		return fail(&hookError{kind: kindAuth, code: code, msg: err.Error()})
	}
	if src.limiter != nil && !src.limiter.Allow() {
		return fail(errRateLimited)
	}
	ev, err := src.Extract(req.Header, body)
	if err != nil {
		code := PayloadCode(err)
		if code == "" {
			code = CodeInvalidJSON
		}
		return fail(&hookError{kind: kindInvalid, code: code, msg: err.Error()})
	}
	p, herr := r.newPending(ev, body)
	if herr != nil {
		return fail(herr)
	}
	if herr := r.queue.offer(p); herr != nil {
		return fail(herr)
	}
	select {
	case o := <-p.done:
		if o.err != nil {
			return fail(o.err)
		}
		return writeStored(w, o.res.ID, o.res.Duplicate)
	case <-req.Context().Done():
		// The client is gone; the writer still commits the event, and a
		// redelivery will be answered as a duplicate.
		return statusClientClosed
	}
}

// refuseBody answers 413 and makes sure that nothing more of the body is
// read: net/http would otherwise read up to 256 KiB of what is left, hoping
// to reuse the connection. An expired read deadline stops that read at once,
// and the connection is closed after the answer.
func refuseBody(w http.ResponseWriter, fail func(*hookError) int) int {
	w.Header().Set("Connection", "close")
	status := fail(errTooLarge)
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	return status
}

// newPending turns an extracted event, read from body, into a queue entry.
func (r *Receiver) newPending(ev Event, body []byte) (*pending, *hookError) {
	if !isJSONObject(ev.Payload) {
		return nil, &hookError{kind: kindInvalid, code: CodeNotObject, msg: "the stored payload must be a JSON object"}
	}
	var meta []byte
	if len(ev.Metadata) > 0 {
		var err error
		if meta, err = appendMetadata(make([]byte, 0, 256), ev.Metadata); err != nil {
			r.log.Error("hookreceiver: encode metadata", "source", ev.Source, "err", err)
			return nil, &hookError{kind: kindInternal, code: CodeInternal, msg: "could not encode the event's metadata"}
		}
	}
	return &pending{
		ev: store.NewEvent{
			Source: ev.Source, Action: ev.Action, Resource: ev.Resource, ResourceID: ev.ResourceID,
			DeliveryID: ev.DeliveryID, Payload: ev.Payload, Metadata: meta,
		},
		// The payload may be a slice of the body (the envelope and GitHub
		// presets), which keeps the whole body's array alive: count that.
		size:     int64(max(cap(body), len(ev.Payload))+len(meta)) + pendingOverhead,
		done:     make(chan outcome, 1),
		enqueued: time.Now(),
	}, nil
}

// isJSONObject reports whether JSON text (already checked) is an object.
func isJSONObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '{'
	}
	return false
}

// jsonMediaType reports whether a Content-Type names JSON: application/json
// or any application/*+json, with no charset or charset utf-8.
func jsonMediaType(ct string) bool {
	if ct == "application/json" {
		return true
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	if mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "utf8")
}

// readBody reads the whole body through http.MaxBytesReader, which reads at
// most limit+1 bytes and makes the server close the connection when the body
// is larger. The buffer is sized from Content-Length when it is given.
func readBody(w http.ResponseWriter, req *http.Request, limit int64) ([]byte, error) {
	rd := http.MaxBytesReader(w, req.Body, limit)
	size := int64(512)
	if req.ContentLength >= 0 {
		size = req.ContentLength + 1 // room to see EOF without growing
	}
	buf := make([]byte, 0, min(size, limit+1))
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// authFailed records an authentication failure: a metric, a debug log and a
// security audit event, rate-limited per source and remote address so that a
// flood of bad requests writes a bounded number of rows.
func (r *Receiver) authFailed(req *http.Request, src *sourceState, err error) {
	code := AuthCode(err)
	r.metrics.authFailures.WithLabelValues(src.Name(), code).Inc()
	ip := remoteIP(req.RemoteAddr)
	r.log.Debug("hookreceiver: authentication failed", "source", src.Name(), "remote_ip", ip, "code", code, "err", err)
	if r.audit == nil {
		return
	}
	info := map[string]any{"source": src.Name(), "remote_ip": ip, "code": code, "path": req.URL.Path}
	if ua := req.UserAgent(); ua != "" {
		info["user_agent"] = ua
	}
	r.audit.WriteLimited(AuditAuthFailed+" "+src.Name()+" "+ip, store.AuditEvent{
		Type:         AuditAuthFailed + "." + code,
		ClientInfo:   info,
		Success:      false,
		ErrorDetails: err.Error(),
	})
}

// AuditAuthFailed starts the type of the audit events of authentication
// failures: "hook.auth_failed.<code>", the code being AuthError.Code
// (bad_signature, missing_token, …).
const AuditAuthFailed = "hook.auth_failed"

// remoteIP is the host part of a RemoteAddr.
func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
