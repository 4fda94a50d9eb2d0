package hookreceiver

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const testSecret = "test-secret-0123456789"

func TestSourceConfigDefaults(t *testing.T) {
	t.Parallel()
	c := SourceConfig{Name: "h", Verifier: VerifierHMACSHA256, Secrets: []string{testSecret}}.WithDefaults()
	require.Equal(t, HMACHeaderDefault, c.Header)
	require.Equal(t, EncodingHex, c.Encoding)
	require.Empty(t, c.Prefix)
	require.Zero(t, c.Tolerance, "tolerance belongs to standard-webhooks only")
	require.Equal(t, int64(BodyLimitDefault), c.BodyLimit)
	require.Equal(t, MaxDepthDefault, c.MaxDepth)
	require.Equal(t, PresetEnvelope, c.Mapping.Preset)
	require.True(t, c.RateLimit.Unlimited())
	require.NoError(t, c.Validate())

	sw := SourceConfig{Name: "s", Verifier: VerifierStandardWebhooks, Secrets: []string{swVectorSecret}}.WithDefaults()
	require.Equal(t, ToleranceDefault, sw.Tolerance)
	require.Equal(t, PresetStandardWebhooks, sw.Mapping.Preset)
	require.Empty(t, sw.Header, "header belongs to hmac-sha256 only")

	gh := SourceConfig{Name: "g", Verifier: VerifierGitHub, Secrets: []string{gitHubVectorSecret}}.WithDefaults()
	require.Equal(t, PresetGitHub, gh.Mapping.Preset)

	rl := SourceConfig{RateLimit: RateLimitConfig{PerSecond: 2.5}}.WithDefaults()
	require.Equal(t, 3, rl.RateLimit.Burst)
	rl = SourceConfig{RateLimit: RateLimitConfig{PerSecond: 0.1}}.WithDefaults()
	require.Equal(t, 1, rl.RateLimit.Burst)
	rl = SourceConfig{RateLimit: RateLimitConfig{PerSecond: 10, Burst: 50}}.WithDefaults()
	require.Equal(t, 50, rl.RateLimit.Burst)

	// Explicit values are kept.
	c = SourceConfig{Verifier: VerifierHMACSHA256, Header: "X-Sig", Encoding: EncodingBase64, BodyLimit: 10, MaxDepth: 3,
		Mapping: MappingConfig{Preset: PresetCustom}}.WithDefaults()
	require.Equal(t, "X-Sig", c.Header)
	require.Equal(t, EncodingBase64, c.Encoding)
	require.Equal(t, int64(10), c.BodyLimit)
	require.Equal(t, 3, c.MaxDepth)
	require.Equal(t, PresetCustom, c.Mapping.Preset)

	// WithDefaults copies the secrets.
	orig := SourceConfig{Secrets: []string{"a"}}
	cp := orig.WithDefaults()
	cp.Secrets[0] = "b"
	require.Equal(t, "a", orig.Secrets[0])
}

// configErrors flattens a joined validation error into its *ConfigErrors.
func configErrors(t *testing.T, err error) []*ConfigError {
	t.Helper()
	require.Error(t, err)
	var out []*ConfigError
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, p := range j.Unwrap() {
				walk(p)
			}
			return
		}
		var ce *ConfigError
		require.ErrorAs(t, e, &ce, "every validation error is a *ConfigError: %v", e)
		out = append(out, ce)
	}
	walk(err)
	return out
}

func fieldsOf(errs []*ConfigError) []string {
	var fs []string
	for _, e := range errs {
		fs = append(fs, e.Field)
	}
	return fs
}

func TestValidateReportsEveryField(t *testing.T) {
	t.Parallel()
	c := SourceConfig{
		Name:      "Bad Name",
		Verifier:  VerifierHMACSHA256,
		Secrets:   []string{"short", " padded-secret-0123456789 "},
		Header:    "X Signature",
		Encoding:  "base32",
		Prefix:    "sha 256=",
		Tolerance: time.Minute,
		RateLimit: RateLimitConfig{PerSecond: -1, Burst: -2},
		BodyLimit: BodyLimitMax + 1,
		MaxDepth:  MaxDepthMax + 1,
		Mapping: MappingConfig{
			Preset:     "gitlab",
			Action:     FieldRule{Pointer: "action"},
			Resource:   FieldRule{Header: "Bad Header"},
			ResourceID: FieldRule{Default: strings.Repeat("x", MaxFieldLen+1)},
			DeliveryID: FieldRule{Pointer: "/a~2b"},
			Headers:    []string{"authorization", "webhook-signature", "ok-header", "bad header"},
		},
	}.WithDefaults()
	errs := configErrors(t, c.Validate())
	require.ElementsMatch(t, []string{
		"name", "secrets[0]", "secrets[1]", "header", "encoding", "prefix", "tolerance",
		"rate_limit.per_second", "rate_limit.burst", "body_limit", "max_depth",
		"mapping.preset", "mapping.action.pointer", "mapping.resource.header", "mapping.resource_id.default",
		"mapping.delivery_id.pointer", "mapping.headers[0]", "mapping.headers[1]", "mapping.headers[3]",
	}, fieldsOf(errs))
	for _, e := range errs {
		require.Equal(t, "Bad Name", e.Source)
		msg := e.Error()
		require.Contains(t, msg, e.Field)
		require.NotContains(t, msg, "padded-secret", "secrets are never printed")
		if strings.HasPrefix(e.Field, "secrets") {
			require.Equal(t, redactedValue, e.Value)
		}
	}
}

func TestValidateVerifierRules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		cfg    SourceConfig
		fields []string // nil: valid
		reason string   // a part of the first error's text
	}{
		{"github", SourceConfig{Verifier: VerifierGitHub, Secrets: []string{gitHubVectorSecret}}, nil, ""},
		{"no verifier", SourceConfig{Secrets: []string{testSecret}}, []string{"verifier"}, "has no verifier: set verifier (github, standard-webhooks, hmac-sha256, bearer) or verifier: none with allow_unsigned: true"},
		{"unknown verifier", SourceConfig{Verifier: "sha1", Secrets: []string{testSecret}}, []string{"verifier"}, "must be github"},
		{"none without allow_unsigned", SourceConfig{Verifier: VerifierNone}, []string{"allow_unsigned"}, "set allow_unsigned: true"},
		{"none with allow_unsigned", SourceConfig{Verifier: VerifierNone, AllowUnsigned: true}, nil, ""},
		{"none with secrets", SourceConfig{Verifier: VerifierNone, AllowUnsigned: true, Secrets: []string{testSecret}}, []string{"secrets"}, "uses no secrets"},
		{"allow_unsigned with a signed verifier", SourceConfig{Verifier: VerifierGitHub, AllowUnsigned: true, Secrets: []string{testSecret}}, []string{"allow_unsigned"}, "only to verifier none"},
		{"github without secrets", SourceConfig{Verifier: VerifierGitHub}, []string{"secrets"}, "at least one secret"},
		{"bearer without secrets", SourceConfig{Verifier: VerifierBearer, Secrets: []string{}}, []string{"secrets"}, "at least one secret"},
		{"short secret", SourceConfig{Verifier: VerifierBearer, Secrets: []string{testSecret, "tiny"}}, []string{"secrets[1]"}, "at least 16"},
		{"whsec not base64", SourceConfig{Verifier: VerifierStandardWebhooks, Secrets: []string{"whsec_***not-base64***"}}, []string{"secrets[0]"}, "base64"},
		{"whsec too short", SourceConfig{Verifier: VerifierStandardWebhooks, Secrets: []string{"whsec_c2hvcnQ="}}, []string{"secrets[0]"}, "5 bytes"},
		{"raw base64 accepted", SourceConfig{Verifier: VerifierStandardWebhooks, Secrets: []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, nil, ""},
		{"tolerance too large", SourceConfig{Verifier: VerifierStandardWebhooks, Secrets: []string{swVectorSecret}, Tolerance: 2 * time.Hour}, []string{"tolerance"}, "at most 1h"},
		{"negative tolerance", SourceConfig{Verifier: VerifierStandardWebhooks, Secrets: []string{swVectorSecret}, Tolerance: -time.Second}, []string{"tolerance"}, "positive"},
		{"hmac settings on github", SourceConfig{Verifier: VerifierGitHub, Secrets: []string{testSecret}, Header: "X-Sig", Encoding: "hex", Prefix: "p="}, []string{"header", "encoding", "prefix"}, "only to verifier hmac-sha256"},
		{"hmac base64 with prefix", SourceConfig{Verifier: VerifierHMACSHA256, Secrets: []string{testSecret}, Encoding: EncodingBase64, Prefix: "sha256="}, nil, ""},
		{"rate limit NaN", SourceConfig{Verifier: VerifierBearer, Secrets: []string{testSecret}, RateLimit: RateLimitConfig{PerSecond: nan()}}, []string{"rate_limit.per_second"}, "positive number"},
		{"custom preset without rules", SourceConfig{Verifier: VerifierBearer, Secrets: []string{testSecret}, Mapping: MappingConfig{Preset: PresetCustom}},
			[]string{"mapping.action", "mapping.resource", "mapping.resource_id"}, "needs a rule"},
		{"custom preset with rules", SourceConfig{Verifier: VerifierBearer, Secrets: []string{testSecret}, Mapping: MappingConfig{Preset: PresetCustom,
			Action: FieldRule{Header: "X-Event"}, Resource: FieldRule{Default: "orders"}, ResourceID: FieldRule{Pointer: "/id"}}}, nil, ""},
		{"signature header kept in metadata", SourceConfig{Verifier: VerifierGitHub, Secrets: []string{testSecret}, Mapping: MappingConfig{Headers: []string{"x-hub-signature-256"}}},
			[]string{"mapping.headers[0]"}, "credential"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.Name = "src"
			err := cfg.WithDefaults().Validate()
			if tc.fields == nil {
				require.NoError(t, err)
				return
			}
			errs := configErrors(t, err)
			require.ElementsMatch(t, tc.fields, fieldsOf(errs))
			require.Contains(t, errs[0].Error(), tc.reason)
			require.Contains(t, errs[0].Error(), "source src")
			for _, s := range cfg.Secrets {
				require.NotContains(t, err.Error(), s)
			}
		})
	}
}

func nan() float64 {
	var z float64
	return z / z
}

func TestSourceNames(t *testing.T) {
	t.Parallel()
	valid := []string{"github", "a", "0", "orders-v2", "my_source", strings.Repeat("a", 63)}
	invalid := []string{"", "GitHub", "-lead", "_lead", "with space", "dot.name", "slash/name", strings.Repeat("a", 64), "ünï", "name\n"}
	for _, n := range valid {
		cfg := SourceConfig{Name: n, Verifier: VerifierNone, AllowUnsigned: true}.WithDefaults()
		require.NoError(t, cfg.Validate(), n)
	}
	for _, n := range invalid {
		cfg := SourceConfig{Name: n, Verifier: VerifierNone, AllowUnsigned: true}.WithDefaults()
		require.Equal(t, []string{"name"}, fieldsOf(configErrors(t, cfg.Validate())), "%q", n)
	}
}

func TestNewSources(t *testing.T) {
	t.Parallel()
	srcs, err := NewSources(nil)
	require.NoError(t, err)
	require.Empty(t, srcs)

	srcs, err = NewSources([]SourceConfig{
		{Name: "github", Verifier: VerifierGitHub, Secrets: []string{gitHubVectorSecret}},
		{Name: "billing", Verifier: VerifierStandardWebhooks, Secrets: []string{swVectorSecret}},
		{Name: "internal", Verifier: VerifierBearer, Secrets: []string{testSecret}},
	})
	require.NoError(t, err)
	require.Len(t, srcs, 3)
	require.Equal(t, "billing", srcs["billing"].Name())
	require.Equal(t, ToleranceDefault, srcs["billing"].Config().Tolerance, "sources keep their defaulted config")

	// Every problem of every source at once, and no sources.
	srcs, err = NewSources([]SourceConfig{
		{Name: "dup", Verifier: VerifierBearer, Secrets: []string{testSecret}},
		{Name: "dup", Verifier: VerifierBearer, Secrets: []string{testSecret}},
		{Name: "unsigned"},
		{Name: "open", Verifier: VerifierNone},
		{Name: "Bad", Verifier: VerifierGitHub},
	})
	require.Nil(t, srcs)
	errs := configErrors(t, err)
	require.ElementsMatch(t, []string{"name", "verifier", "allow_unsigned", "name", "secrets"}, fieldsOf(errs))
	require.ErrorIs(t, err, ErrNoVerifier)
	require.Contains(t, err.Error(), "sources[1] repeats the name of sources[0]")
	require.Contains(t, err.Error(), "source unsigned has no verifier")

	// A name repeated after an invalid first use is still a duplicate.
	_, err = NewSources([]SourceConfig{{Name: "x"}, {Name: "x", Verifier: VerifierNone, AllowUnsigned: true}})
	require.ElementsMatch(t, []string{"verifier", "name"}, fieldsOf(configErrors(t, err)))
}

// TestConfigTags keeps the YAML keys snake_case and the secrets redactable by
// `config print` (which replaces fields tagged secret:"true").
func TestConfigTags(t *testing.T) {
	t.Parallel()
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("yaml")
			require.Regexp(t, snake, tag, "%s.%s", typ.Name(), f.Name)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeFor[SourceConfig]())
	f, ok := reflect.TypeFor[SourceConfig]().FieldByName("Secrets")
	require.True(t, ok)
	require.Equal(t, "true", f.Tag.Get("secret"))
}

func TestSourceConfigFromYAML(t *testing.T) {
	t.Parallel()
	const doc = `
- name: github
  verifier: github
  secrets: ["It's a Secret to Everybody"]
  rate_limit: {per_second: 50, burst: 100}
- name: billing
  verifier: standard-webhooks
  secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]
  tolerance: 2m
- name: shop
  verifier: hmac-sha256
  secrets: [shop-secret-0123456789]
  header: X-Shop-Hmac-Sha256
  encoding: base64
  body_limit: 65536
  max_depth: 16
  mapping:
    preset: custom
    action: {header: X-Shop-Topic}
    resource: {default: shop}
    resource_id: {pointer: /id}
    delivery_id: {header: X-Shop-Webhook-Id}
    headers: [X-Shop-Domain]
`
	var cfgs []SourceConfig
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&cfgs))
	srcs, err := NewSources(cfgs)
	require.NoError(t, err)
	require.Equal(t, 2*time.Minute, srcs["billing"].Config().Tolerance)
	require.Equal(t, 100, srcs["github"].Config().RateLimit.Burst)
	shop := srcs["shop"].Config()
	require.Equal(t, int64(65536), shop.BodyLimit)
	require.Equal(t, "/id", shop.Mapping.ResourceID.Pointer)

	var bad []SourceConfig
	dec = yaml.NewDecoder(strings.NewReader("- name: x\n  verifer: github\n"))
	dec.KnownFields(true)
	require.Error(t, dec.Decode(&bad), "a misspelt key is an error")
}

func TestConfigErrorUnwrap(t *testing.T) {
	t.Parallel()
	err := SourceConfig{Name: "x"}.WithDefaults().Validate()
	require.True(t, errors.Is(err, ErrNoVerifier))
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "verifier", ce.Field)
}
