package hookreceiver

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAppendMetadataMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	m := map[string]any{
		"plain":        "value",
		"esc\"aped\\":  "line\nbreak\ttab\r\x01<&>\u2028\u2029 ünïcödé \xff",
		"raw":          json.RawMessage(`{"a":[1,2,{"b":null}],"c":"d"}`),
		"nil_raw":      json.RawMessage(nil),
		"null":         nil,
		"yes":          true,
		"count":        42,
		"big":          int64(-1 << 62),
		"unsigned":     uint64(1 << 63),
		"small":        int32(-7),
		"float":        1.5,
		"list":         []string{"x", "y"},
		MetadataKey:    map[string]any{"verifier": "github", "content_length": 512, "headers": map[string]string{"User-Agent": "GitHub-Hookshot/1", "X-Odd": "\x00\x7f"}},
		"empty_object": map[string]any{},
	}
	got, err := appendMetadata(nil, m)
	require.NoError(t, err)
	require.True(t, json.Valid(got), string(got))
	want, err := json.Marshal(m)
	require.NoError(t, err)
	var g, w any
	require.NoError(t, json.Unmarshal(got, &g))
	require.NoError(t, json.Unmarshal(want, &w))
	require.Equal(t, w, g)

	_, err = appendMetadata(nil, map[string]any{"bad": make(chan int)})
	require.Error(t, err, "a value encoding/json cannot encode is an error")
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a", `"\`, "\x00\x1f\x7f", "<script>&", "\u2028\u2029", "\xff\xfe", "é\xc3", "\U0001F600"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendJSONString(nil, s)))
	})
}
