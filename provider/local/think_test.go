package local

import (
	"strings"
	"testing"
)

func split(chunks ...string) (reasoning, content string) {
	var s thinking
	var r, c strings.Builder
	for _, ch := range chunks {
		a, b := s.add(ch)
		r.WriteString(a)
		c.WriteString(b)
	}
	a, b := s.flush()
	r.WriteString(a)
	c.WriteString(b)
	return r.String(), c.String()
}

func TestThinking(t *testing.T) {
	for _, c := range []struct {
		chunks             []string
		reasoning, content string
	}{
		{[]string{"<think>\nLet me see.\n</think>\n\nIt is 4."}, "Let me see.", "It is 4."},
		{[]string{"<", "thi", "nk>", "\n", "Let me", " see.\n", "\n</", "think", ">\n", "\n", "It is 4."}, "Let me see.", "It is 4."},
		{[]string{"It is 4."}, "", "It is 4."},
		{[]string{"<thin", "g> is not a tag"}, "", "<thing> is not a tag"},
		{[]string{"<think>\n\n</think>\n\nSure."}, "", "Sure."},
		{[]string{"<think>cut off mid-thought </th"}, "cut off mid-thought </th", ""},
		{[]string{"a < b\n", "\nc"}, "", "a < b\n\nc"},
	} {
		r, got := split(c.chunks...)
		if r != c.reasoning || got != c.content {
			t.Errorf("%q: reasoning %q content %q, want %q %q", c.chunks, r, got, c.reasoning, c.content)
		}
	}
}

// Any chunking of a text gives the split of the whole.
func FuzzThinking(f *testing.F) {
	f.Add("<think>\nhmm\n</think>\n\nyes", uint64(0x0123456789))
	f.Add(" \n<think>a</think>b</think>", uint64(7))
	f.Add("<th", uint64(1))
	f.Fuzz(func(t *testing.T, text string, cuts uint64) {
		wantR, wantC := split(text)
		var chunks []string
		for rest := text; rest != ""; cuts >>= 3 {
			n := min(len(rest), int(cuts&7)+1)
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		if r, c := split(chunks...); r != wantR || c != wantC {
			t.Fatalf("%q: chunked %q %q, whole %q %q", chunks, r, c, wantR, wantC)
		}
	})
}
