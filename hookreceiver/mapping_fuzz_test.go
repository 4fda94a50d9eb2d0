package hookreceiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

var payloadCodes = []string{
	CodeInvalidJSON, CodeInvalidUTF8, CodeNULCharacter, CodeInvalidUnicodeEscape, CodeNumberOutOfRange,
	CodeNestingTooDeep, CodeDuplicateKey, CodeNotObject, CodeMissingField, CodeFieldTooLong, CodeInvalidField,
}

// tokenOracle walks body with encoding/json's tokenizer, independently of
// checkJSON, until the first syntax error. It reports whether a decoded string
// or key held NUL, whether an object repeated a key, and the deepest nesting.
func tokenOracle(body []byte) (nul, dup bool, depth int) {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // next string token in this object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nul, dup, depth
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := top != nil && top.object && top.expect
		if top != nil && top.object {
			top.expect = !top.expect
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				stack = append(stack, &frame{object: v == '{', keys: map[string]bool{}, expect: true})
				depth = max(depth, len(stack))
			case '}', ']':
				// The parent's key/value toggle happened when this opened.
				stack = stack[:len(stack)-1]
			}
		case string:
			if strings.IndexByte(v, 0) >= 0 {
				nul = true
			}
			if isKey {
				if top.keys[v] {
					dup = true
				}
				top.keys[v] = true
			}
		}
	}
}

func FuzzExtract(f *testing.F) {
	seeds := []string{
		`{"action":"created","resource":"order","resource_id":"1","payload":{"a":[1,2,{"b":null}]},"metadata":{"m":1.5e3}}`,
		`{"action":"opened","number":1,"pull_request":{"number":1},"repository":{"full_name":"o/r","id":2}}`,
		`{"action":"a","resource":"r","resource_id":"\u0000"}`,
		`{"action":"a","resource":"r","resource_id":"\\u0000"}`,
		`{"a":"\ud800"}`,
		`{"a":"\ud83d\ude00","\u0061":1}`,
		`{"a":1,"a":2}`,
		`{"n":1e131072}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
		"{\"a\":\"\xff\"}",
		`{"action":{},"resource":[],"resource_id":true}`,
		"",
		`null`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), "pull_request")
	}
	f.Add([]byte(`{"action":"a"}`), "")

	envelope, err := NewSource(SourceConfig{Name: "env", Verifier: VerifierBearer, Secrets: []string{testSecret}})
	if err != nil {
		f.Fatal(err)
	}
	github, err := NewSource(SourceConfig{Name: "gh", Verifier: VerifierGitHub, Secrets: []string{gitHubVectorSecret}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, event string) {
		checkErr := func() error { _, err := checkJSON(body, MaxDepthDefault); return err }()
		var code string
		if checkErr != nil {
			var pe *PayloadError
			if !errors.As(checkErr, &pe) {
				t.Fatalf("checkJSON error is not a *PayloadError: %v", checkErr)
			}
			code = pe.Code
		}
		goValid := json.Valid(body) && utf8.Valid(body)
		nul, dup, depth := tokenOracle(body)
		switch {
		case code == "":
			if !goValid || nul || dup || depth > MaxDepthDefault {
				t.Fatalf("checkJSON accepted %q: encoding/json valid %v, NUL %v, duplicate %v, depth %d", body, goValid, nul, dup, depth)
			}
		case code == CodeInvalidJSON || code == CodeInvalidUTF8:
			if goValid {
				t.Fatalf("checkJSON says %s for %q, which encoding/json accepts", code, body)
			}
		case !goValid:
			// checkJSON stops at the first problem; the tokenizer may stop at
			// a syntax error later in the same string before reporting it.
		case code == CodeNULCharacter && !nul, code == CodeDuplicateKey && !dup, code == CodeNestingTooDeep && depth <= MaxDepthDefault:
			t.Fatalf("checkJSON says %s for %q, the tokenizer disagrees", code, body)
		}

		for _, s := range []*Source{envelope, github} {
			h := http.Header{}
			h.Set("X-GitHub-Event", event)
			h.Set("X-GitHub-Delivery", "d-1")
			ev, err := s.Extract(h, body)
			if err != nil {
				var pe *PayloadError
				if !errors.As(err, &pe) || !slices.Contains(payloadCodes, pe.Code) {
					t.Fatalf("Extract error without a known code: %v", err)
				}
				continue
			}
			if checkErr != nil {
				t.Fatalf("Extract accepted a body checkJSON refuses: %v", checkErr)
			}
			for name, v := range map[string]string{"action": ev.Action, "resource": ev.Resource, "resource_id": ev.ResourceID} {
				if v == "" || utf8.RuneCountInString(v) > MaxFieldLen || !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
					t.Fatalf("%s %q is not storable", name, v)
				}
			}
			if !json.Valid(ev.Payload) || bytes.TrimLeft(ev.Payload, " \t\r\n")[0] != '{' {
				t.Fatalf("payload %q is not a JSON object", ev.Payload)
			}
			meta, err := json.Marshal(ev.Metadata)
			if err != nil {
				t.Fatalf("metadata does not marshal: %v", err)
			}
			if _, err := checkJSON(meta, MaxDepthDefault); err != nil {
				t.Fatalf("metadata %s is not storable: %v", meta, err)
			}
		}
	})
}
