package hookreceiver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Run a fuzzer with, for example:
//
//	go test -run '^$' -fuzz '^FuzzStandardWebhooksHeaders$' -fuzztime 20s -fuzzminimizetime 5s ./hookreceiver
//
// (the default minimisation budget of 60 s per new input stalls short runs).
// Inputs worth keeping go to testdata/fuzz/<FuzzName>/, which plain go test
// replays.
//
// The fuzzers below share one property: a verifier never panics, every error
// is an *AuthError, and a request is accepted only if its header carries a
// signature computed with one of the secrets over exactly this body. mode lets
// the fuzzer start from a correct signature and mutate around it, so the
// acceptance path is explored and not just the rejections.

const fuzzSecondSecret = "second-secret-0123456789"

// splice returns s with ins inserted at a position chosen by at.
func splice(s, ins string, at uint8) string {
	i := int(at) % (len(s) + 1)
	return s[:i] + ins + s[i:]
}

func requireFuzzAuthErr(t *testing.T, err error) {
	t.Helper()
	if err != nil && AuthCode(err) == "" {
		t.Fatalf("error is not an *AuthError: %v", err)
	}
}

func FuzzGitHubSignatureHeader(f *testing.F) {
	f.Add(gitHubVectorSignature, []byte(gitHubVectorPayload), uint8(0), uint8(0))
	f.Add(gitHubVectorSignature, []byte("Hello, World?"), uint8(0), uint8(0))
	f.Add("", []byte(gitHubVectorPayload), uint8(1), uint8(0))
	f.Add("0", []byte(`{"a":1}`), uint8(2), uint8(70))
	f.Add("sha256=", []byte{}, uint8(0), uint8(0))
	f.Add("SHA256="+strings.Repeat("a", 64), []byte("x"), uint8(0), uint8(0))
	f.Add("sha256=ｆｆ"+strings.Repeat("0", 62), []byte("x"), uint8(0), uint8(0))
	f.Add("sha256="+strings.Repeat("0", 1<<12), []byte("x"), uint8(0), uint8(0))
	f.Add("sha256=\x00\xff", []byte("\x00"), uint8(0), uint8(0))

	v := newGitHubVerifier([]string{gitHubVectorSecret, fuzzSecondSecret})
	now := time.Now()
	f.Fuzz(func(t *testing.T, sig string, body []byte, mode, at uint8) {
		valid := []string{
			"sha256=" + hex.EncodeToString(hmacSHA256([]byte(gitHubVectorSecret), body)),
			"sha256=" + hex.EncodeToString(hmacSHA256([]byte(fuzzSecondSecret), body)),
		}
		switch mode % 3 {
		case 1:
			sig = valid[int(at)%2]
		case 2:
			sig = splice(valid[int(at)%2], sig, at)
		}
		h := http.Header{GitHubSignatureHeader: {sig}}
		err := v.Verify(h, body, now)
		requireFuzzAuthErr(t, err)
		if err == nil && !strings.EqualFold(sig, valid[0]) && !strings.EqualFold(sig, valid[1]) {
			t.Fatalf("accepted %q, which is no secret's signature of %q", sig, body)
		}
		if err != nil && (sig == valid[0] || sig == valid[1]) {
			t.Fatalf("refused a correct signature: %v", err)
		}
	})
}

func FuzzHMACHeader(f *testing.F) {
	body := []byte(`{"action":"created"}`)
	mac := hmacSHA256([]byte(testSecret), body)
	f.Add("sha256="+hex.EncodeToString(mac), body, false, uint8(0), uint8(0))
	f.Add("sha256="+base64.StdEncoding.EncodeToString(mac), body, true, uint8(0), uint8(0))
	f.Add("sha256="+base64.RawStdEncoding.EncodeToString(mac), body, true, uint8(0), uint8(0))
	f.Add("=", body, true, uint8(2), uint8(50))
	f.Add("\n", body, true, uint8(2), uint8(20))
	f.Add("", []byte{}, false, uint8(1), uint8(1))
	f.Add("sha256=", body, true, uint8(0), uint8(0))
	f.Add(strings.Repeat("=", 100), body, true, uint8(0), uint8(0))
	f.Add("sha256=+/+/", body, true, uint8(0), uint8(0))

	hexV := newHMACVerifier([]string{testSecret, fuzzSecondSecret}, "X-Signature", "sha256=", EncodingHex)
	b64V := newHMACVerifier([]string{testSecret, fuzzSecondSecret}, "X-Signature", "sha256=", EncodingBase64)
	now := time.Now()
	f.Fuzz(func(t *testing.T, value string, body []byte, useBase64 bool, mode, at uint8) {
		v := hexV
		if useBase64 {
			v = b64V
		}
		var valid []string
		for _, s := range []string{testSecret, fuzzSecondSecret} {
			valid = append(valid, v.sign([]byte(s), body))
		}
		switch mode % 3 {
		case 1:
			value = valid[int(at)%2]
		case 2:
			value = splice(valid[int(at)%2], value, at)
		}
		err := v.Verify(http.Header{"X-Signature": {value}}, body, now)
		requireFuzzAuthErr(t, err)
		matches := func(want string) bool {
			if useBase64 {
				return value == want || value == strings.TrimSuffix(want, "=")
			}
			return strings.EqualFold(value, want)
		}
		if err == nil && !matches(valid[0]) && !matches(valid[1]) {
			t.Fatalf("accepted %q, which is no secret's signature of %q", value, body)
		}
		if err != nil && (value == valid[0] || value == valid[1]) {
			t.Fatalf("refused a correct signature: %v", err)
		}
	})
}

func FuzzStandardWebhooksHeaders(f *testing.F) {
	ts := strconv.Itoa(swVectorTimestamp)
	f.Add(swVectorID, ts, swVectorSignature, []byte(swVectorPayload), uint8(0), uint8(0))
	f.Add(swVectorID, ts, swVectorSignature, []byte(`{"test": 2432232315}`), uint8(0), uint8(0))
	f.Add(swVectorID, ts, "v1a,abc v2,def", []byte(swVectorPayload), uint8(2), uint8(0))
	f.Add(swVectorID, ts, "v1,AAAA", []byte(swVectorPayload), uint8(2), uint8(255))
	f.Add(swVectorID, strconv.Itoa(swVectorTimestamp+301), "", []byte("{}"), uint8(1), uint8(0))
	f.Add("", ts, swVectorSignature, []byte("{}"), uint8(0), uint8(0))
	f.Add("msg.1.2", "0001614265330", "", []byte("{}"), uint8(1), uint8(0))
	f.Add("msg", "-1", "v1,", []byte{}, uint8(0), uint8(0))
	f.Add("msg", "99999999999999999999", "v1,,v1", []byte{}, uint8(0), uint8(0))
	f.Add("ｍｓｇ", ts, "   ", []byte("\xff"), uint8(2), uint8(3))

	secrets := []string{swVectorSecret, "whsec_" + base64.StdEncoding.EncodeToString([]byte(fuzzSecondSecret))}
	v, err := newStandardWebhooksVerifier(secrets, ToleranceDefault)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(swVectorTimestamp, 0)
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte, mode, at uint8) {
		var valid []string
		for _, key := range v.keys {
			m := hmac.New(sha256.New, key)
			m.Write([]byte(id + "." + ts + "."))
			m.Write(body)
			valid = append(valid, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
		}
		switch mode % 3 {
		case 1:
			sig = valid[int(at)%2] + " " + sig
		case 2:
			sig = splice(valid[int(at)%2], sig, at)
		}
		h := http.Header{}
		h[StandardWebhooksIDHeader] = []string{id}
		h[StandardWebhooksTimestampHeader] = []string{ts}
		h[StandardWebhooksSignatureHeader] = []string{sig}
		err := v.Verify(h, body, now)
		requireFuzzAuthErr(t, err)

		// Digits only (ParseUint takes no sign), within ±5 minutes.
		sec, tsErr := strconv.ParseUint(ts, 10, 63)
		inRange := tsErr == nil && sec >= swVectorTimestamp-300 && sec <= swVectorTimestamp+300
		carries := false
		for tok := range strings.SplitSeq(sig, " ") {
			if tok == valid[0] || tok == valid[1] {
				carries = true
			}
		}
		if err == nil && (!inRange || !carries || id == "") {
			t.Fatalf("accepted id=%q ts=%q sig=%q body=%q: in range %v, carries a valid signature %v", id, ts, sig, body, inRange, carries)
		}
		if err != nil && inRange && carries && id != "" {
			t.Fatalf("refused a correct request: %v", err)
		}
	})
}
