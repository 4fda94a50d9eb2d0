package hookreceiver

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Mapping presets accepted by MappingConfig.Preset.
//
// github (the default for verifier github):
//   - delivery_id: the X-GitHub-Delivery header (required).
//   - action: the X-GitHub-Event header, plus "." and the body's /action when
//     the event has one: "pull_request.opened", "push".
//   - resource: /repository/full_name, else /organization/login, else
//     /enterprise/slug, else "github".
//   - resource_id: by event: pull_request* → /pull_request/number;
//     issues, issue_comment → /issue/number; discussion* → /discussion/number;
//     push → /after (the head commit); create, delete → /ref; ping → /hook_id;
//     any other event E → /E/id, else /E/number. Then /repository/id, else
//     /organization/id, else the delivery id.
//   - payload: the whole body; headers kept: X-GitHub-Event, X-GitHub-Delivery,
//     X-GitHub-Hook-ID and X-GitHub-Hook-Installation-Target-ID/-Type.
//
// standard-webhooks (the default for verifier standard-webhooks), for bodies
// shaped {"type": "user.created", "timestamp": ..., "data": {...}}:
//   - delivery_id: the webhook-id header (required).
//   - action: /type; resource: /type up to its last "." ("user"), or all of
//     it when it has no "."; resource_id: /data/id, else the webhook-id.
//   - payload: the whole body; headers kept: webhook-id, webhook-timestamp.
//
// envelope (the default for hmac-sha256, bearer and none), for internal
// senders: {"action", "resource", "resource_id", "payload", "metadata",
// "delivery_id"}:
//   - action, resource, resource_id: the body's members of those names.
//   - delivery_id: /delivery_id, else the Idempotency-Key header; optional.
//   - payload and metadata: the body's objects of those names, {} when absent.
//
// custom: nothing is preset; action, resource and resource_id need rules, and
// the payload is the whole body.
//
// With every preset, the User-Agent header is kept in metadata, and a rule
// set in MappingConfig replaces the preset's way of taking that field.
const (
	PresetGitHub           = "github"
	PresetStandardWebhooks = "standard-webhooks"
	PresetEnvelope         = "envelope"
	PresetCustom           = "custom"
)

// MappingConfig says how an event's fields are taken from a request.
type MappingConfig struct {
	// Preset is github, standard-webhooks, envelope or custom (see the Preset
	// constants). Defaults to github for verifier github, standard-webhooks for
	// verifier standard-webhooks, and envelope otherwise.
	Preset string `yaml:"preset"`

	// Action, Resource, ResourceID and DeliveryID, when set, replace the
	// preset's rule for that field. Default: the preset's rule.
	Action     FieldRule `yaml:"action"`
	Resource   FieldRule `yaml:"resource"`
	ResourceID FieldRule `yaml:"resource_id"`
	DeliveryID FieldRule `yaml:"delivery_id"`

	// Headers are request headers to keep in the event's metadata, besides
	// User-Agent and the preset's. Credentials (Authorization, Cookie, the
	// signature headers) are refused. Defaults to none.
	Headers []string `yaml:"headers"`
}

// FieldRule takes one field from the request. With Header alone the value is
// that header; with Pointer alone, the string or number at that JSON pointer
// (RFC 6901) in the body; with both, "<header>.<pointer value>" when both are
// present and whichever is present otherwise (GitHub's event plus action).
// Default is used when nothing is present; a rule with only Default is a
// constant. A JSON null counts as absent; an object, array or boolean is an
// invalid_field error.
type FieldRule struct {
	// Pointer is a JSON pointer into the body, e.g. "/repository/full_name".
	Pointer string `yaml:"pointer"`
	// Header is a request header name, e.g. "X-Event".
	Header string `yaml:"header"`
	// Default is the value when neither is present.
	Default string `yaml:"default"`
}

// IsZero reports whether the rule is unset.
func (r FieldRule) IsZero() bool { return r == FieldRule{} }

func (r FieldRule) describe() string {
	var parts []string
	if r.Header != "" {
		parts = append(parts, "header "+http.CanonicalHeaderKey(r.Header))
	}
	if r.Pointer != "" {
		parts = append(parts, "body "+r.Pointer)
	}
	s := strings.Join(parts, " and ")
	switch {
	case r.Default != "" && s == "":
		s = fmt.Sprintf("the constant %q", r.Default)
	case r.Default != "":
		s += fmt.Sprintf(", else %q", r.Default)
	}
	return s
}

func (m MappingConfig) withDefaults(verifier string) MappingConfig {
	m.Headers = slices.Clone(m.Headers)
	if m.Preset == "" {
		switch verifier {
		case VerifierGitHub:
			m.Preset = PresetGitHub
		case VerifierStandardWebhooks:
			m.Preset = PresetStandardWebhooks
		default:
			m.Preset = PresetEnvelope
		}
	}
	return m
}

func (m MappingConfig) rules() []struct {
	name string
	rule FieldRule
} {
	return []struct {
		name string
		rule FieldRule
	}{{"action", m.Action}, {"resource", m.Resource}, {"resource_id", m.ResourceID}, {"delivery_id", m.DeliveryID}}
}

// credentialHeaders may never be copied into metadata.
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie",
	GitHubSignatureHeader, "X-Hub-Signature", StandardWebhooksSignatureHeader}

func (m MappingConfig) validate(c SourceConfig) []error {
	var errs []error
	switch m.Preset {
	case PresetGitHub, PresetStandardWebhooks, PresetEnvelope, PresetCustom:
	default:
		errs = append(errs, c.fieldErr("mapping.preset", m.Preset, "must be github, standard-webhooks, envelope or custom"))
	}
	for _, f := range m.rules() {
		field := "mapping." + f.name
		r := f.rule
		if r.IsZero() {
			if m.Preset == PresetCustom && f.name != "delivery_id" {
				errs = append(errs, c.fieldErr(field, "", "preset custom needs a rule (pointer, header or default)"))
			}
			continue
		}
		if r.Pointer != "" {
			if _, err := parsePointer(r.Pointer); err != nil {
				errs = append(errs, c.fieldErr(field+".pointer", r.Pointer, err.Error()))
			}
		}
		if r.Header != "" && !validHeaderName(r.Header) {
			errs = append(errs, c.fieldErr(field+".header", r.Header, "must be an HTTP header name"))
		}
		if r.Default != "" {
			if err := checkFieldValue(f.name, r.Default); err != nil {
				errs = append(errs, c.fieldErr(field+".default", r.Default, err.Error()))
			}
		}
	}
	sensitive := credentialHeaders
	if c.Header != "" {
		sensitive = append(slices.Clone(sensitive), c.Header)
	}
	for i, hd := range m.Headers {
		switch {
		case !validHeaderName(hd):
			errs = append(errs, c.fieldErr(fmt.Sprintf("mapping.headers[%d]", i), hd, "must be an HTTP header name"))
		case slices.ContainsFunc(sensitive, func(s string) bool { return strings.EqualFold(s, hd) }):
			errs = append(errs, c.fieldErr(fmt.Sprintf("mapping.headers[%d]", i), hd, "carries a credential and must not be stored"))
		}
	}
	return errs
}

// newMapper compiles a validated config's mapping.
func newMapper(cfg SourceConfig) (*mapper, error) {
	mc := cfg.Mapping
	m := &mapper{source: cfg.Name, verifier: cfg.Verifier, maxDepth: cfg.MaxDepth}
	headers := []string{"User-Agent"}
	switch mc.Preset {
	case PresetGitHub:
		m.fields = githubFields()
		m.needObject = true
		headers = append(headers, gitHubEventHeader, gitHubDeliveryHeader, "X-GitHub-Hook-ID",
			"X-GitHub-Hook-Installation-Target-ID", "X-GitHub-Hook-Installation-Target-Type")
	case PresetStandardWebhooks:
		m.fields = standardWebhooksFields()
		m.needObject = true
		headers = append(headers, StandardWebhooksIDHeader, StandardWebhooksTimestampHeader)
	case PresetEnvelope:
		m.fields = envelopeFields()
		m.needObject = true
		m.envelope = true
		headers = append(headers, idempotencyKeyHeader)
	case PresetCustom:
		m.fields = []fieldSpec{{name: "action"}, {name: "resource"}, {name: "resource_id"}, {name: "delivery_id"}}
		for i := range m.fields {
			m.fields[i].required = m.fields[i].name != "delivery_id"
			m.fields[i].from = "nowhere (no rule is configured)"
			m.fields[i].extract = func(*extraction) (string, error) { return "", nil }
		}
	default:
		return nil, fmt.Errorf("source %s: unknown mapping preset %q", cfg.Name, mc.Preset)
	}
	for i, f := range mc.rules() {
		if f.rule.IsZero() {
			continue
		}
		extract, usesBody, err := compileRule(f.name, f.rule)
		if err != nil {
			return nil, fmt.Errorf("source %s: mapping.%s: %w", cfg.Name, f.name, err)
		}
		m.fields[i].extract = extract
		m.fields[i].from = f.rule.describe()
		m.needObject = m.needObject || usesBody
	}
	for _, hd := range append(headers, mc.Headers...) {
		hd = http.CanonicalHeaderKey(hd)
		if !slices.Contains(m.headers, hd) {
			m.headers = append(m.headers, hd)
		}
	}
	return m, nil
}

func compileRule(name string, r FieldRule) (extract func(*extraction) (string, error), usesBody bool, err error) {
	var p jsonPointer
	if r.Pointer != "" {
		if p, err = parsePointer(r.Pointer); err != nil {
			return nil, false, err
		}
	}
	header := http.CanonicalHeaderKey(r.Header)
	return func(x *extraction) (string, error) {
		var hv, pv string
		if header != "" {
			hv = x.h.Get(header)
		}
		if p != nil {
			v, err := x.stringAt(p, name)
			if err != nil {
				return "", err
			}
			pv = v
		}
		switch {
		case hv != "" && pv != "":
			return hv + "." + pv, nil
		case hv != "":
			return hv, nil
		case pv != "":
			return pv, nil
		}
		return r.Default, nil
	}, p != nil, nil
}

// firstString returns the first non-empty string or number among ps.
func (x *extraction) firstString(field string, ps ...jsonPointer) (string, error) {
	for _, p := range ps {
		v, err := x.stringAt(p, field)
		if err != nil || v != "" {
			return v, err
		}
	}
	return "", nil
}

const (
	gitHubEventHeader    = "X-GitHub-Event"
	gitHubDeliveryHeader = "X-GitHub-Delivery"
	idempotencyKeyHeader = "Idempotency-Key"
)

// gitHubResourceID lists, per event, where the resource id is.
var gitHubResourceID = map[string][]jsonPointer{
	"pull_request":                {{"pull_request", "number"}},
	"pull_request_review":         {{"pull_request", "number"}},
	"pull_request_review_comment": {{"pull_request", "number"}},
	"pull_request_review_thread":  {{"pull_request", "number"}},
	"issues":                      {{"issue", "number"}},
	"issue_comment":               {{"issue", "number"}},
	"discussion":                  {{"discussion", "number"}},
	"discussion_comment":          {{"discussion", "number"}},
	"push":                        {{"after"}},
	"create":                      {{"ref"}},
	"delete":                      {{"ref"}},
	"ping":                        {{"hook_id"}},
}

func githubFields() []fieldSpec {
	return []fieldSpec{
		{name: "action", required: true, from: "the X-GitHub-Event header and the body's /action",
			extract: func(x *extraction) (string, error) {
				event := x.h.Get(gitHubEventHeader)
				if event == "" {
					return "", nil
				}
				action, err := x.stringAt(jsonPointer{"action"}, "action")
				if err != nil || action == "" {
					return event, err
				}
				return event + "." + action, nil
			}},
		{name: "resource", required: true, from: "the body's /repository/full_name",
			extract: func(x *extraction) (string, error) {
				v, err := x.firstString("resource", jsonPointer{"repository", "full_name"},
					jsonPointer{"organization", "login"}, jsonPointer{"enterprise", "slug"})
				if err != nil || v != "" {
					return v, err
				}
				return "github", nil
			}},
		{name: "resource_id", required: true, from: "the body (by event) or the X-GitHub-Delivery header",
			extract: func(x *extraction) (string, error) {
				event := x.h.Get(gitHubEventHeader)
				ps, ok := gitHubResourceID[event]
				if !ok && event != "" {
					ps = []jsonPointer{{event, "id"}, {event, "number"}}
				}
				ps = append(slices.Clip(ps), jsonPointer{"repository", "id"}, jsonPointer{"organization", "id"})
				v, err := x.firstString("resource_id", ps...)
				if err != nil || v != "" {
					return v, err
				}
				return x.h.Get(gitHubDeliveryHeader), nil
			}},
		{name: "delivery_id", required: true, from: "the X-GitHub-Delivery header",
			extract: func(x *extraction) (string, error) { return x.h.Get(gitHubDeliveryHeader), nil }},
	}
}

func standardWebhooksFields() []fieldSpec {
	typ := jsonPointer{"type"}
	return []fieldSpec{
		{name: "action", required: true, from: "the body's /type",
			extract: func(x *extraction) (string, error) { return x.stringAt(typ, "action") }},
		{name: "resource", required: true, from: "the body's /type",
			extract: func(x *extraction) (string, error) {
				t, err := x.stringAt(typ, "resource")
				if i := strings.LastIndexByte(t, '.'); i > 0 {
					t = t[:i]
				}
				return t, err
			}},
		{name: "resource_id", required: true, from: "the body's /data/id or the webhook-id header",
			extract: func(x *extraction) (string, error) {
				v, err := x.stringAt(jsonPointer{"data", "id"}, "resource_id")
				if err != nil || v != "" {
					return v, err
				}
				return x.h.Get(StandardWebhooksIDHeader), nil
			}},
		{name: "delivery_id", required: true, from: "the webhook-id header",
			extract: func(x *extraction) (string, error) { return x.h.Get(StandardWebhooksIDHeader), nil }},
	}
}

func envelopeFields() []fieldSpec {
	member := func(name string) fieldSpec {
		p := jsonPointer{name}
		return fieldSpec{name: name, required: true, from: "the body's /" + name,
			extract: func(x *extraction) (string, error) { return x.stringAt(p, name) }}
	}
	return []fieldSpec{
		member("action"), member("resource"), member("resource_id"),
		{name: "delivery_id", from: "the body's /delivery_id or the Idempotency-Key header",
			extract: func(x *extraction) (string, error) {
				v, err := x.stringAt(jsonPointer{"delivery_id"}, "delivery_id")
				if err != nil || v != "" {
					return v, err
				}
				return x.h.Get(idempotencyKeyHeader), nil
			}},
	}
}
