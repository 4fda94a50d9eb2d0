package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printable is s made safe for a table on a terminal. Events, sessions and
// errors hold text from webhook senders and other processes: a control
// character could clear the screen, retitle the window, or (a tab or newline)
// fake a table row, and a bidirectional override could reorder what is shown.
// Those characters and invalid UTF-8 are shown escaped as in a Go string
// literal (\x1b, \n, \u202e, \xff); --json prints the exact values.
func printable(s string) string {
	if !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && isInvalidAt(s, i):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// printableLines is printable for text of several lines (errors joined
// with errors.Join): its line breaks are kept.
func printableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = printable(l)
	}
	return strings.Join(lines, "\n")
}

// unsafeRune reports whether r must not reach a terminal as it is.
// utf8.RuneError stands for invalid UTF-8 here (a real U+FFFD is then kept).
func unsafeRune(r rune) bool {
	return r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

// isInvalidAt reports whether s holds invalid UTF-8 at byte i.
func isInvalidAt(s string, i int) bool {
	_, size := utf8.DecodeRuneInString(s[i:])
	return size == 1
}
