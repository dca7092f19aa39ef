package aigrid

import (
	"bytes"
	"encoding/json"
	"testing"
)

var contentCases = []string{
	"", "hello", "Habari ya asubuhi, daktari", "émoji 🌍 und Umlaute", "مرحبا", "नमस्ते", "你好",
	`a "quoted" word`, `back\\slash`, "tab\there", "line\nbreak", "\x00\x1f", "<b>&amp;</b>",
	"sep\u2028ara\u2029tors", "bad utf-8 \xff\xfe", "\u007f del", "trailing \\", "bell\b form\f", "ünïcödé \"quoted\"\n",
}

// Text content is written and read exactly as encoding/json writes and
// reads a plain string, by the shortcut or not.
func TestContentJSONMatchesEncodingJSON(t *testing.T) {
	for _, text := range contentCases {
		got, err := json.Marshal(Content{Text: text})
		want, _ := json.Marshal(text)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%q written as %s, want %s (%v)", text, got, want, err)
		}
		var back Content
		var wantBack string
		json.Unmarshal(want, &wantBack)
		if err := json.Unmarshal(want, &back); err != nil || back.Text != wantBack || back.Parts != nil {
			t.Errorf("%s read as %+v, want %q (%v)", want, back, wantBack, err)
		}
	}
	var c Content
	if err := c.UnmarshalJSON([]byte(`"a"b"`)); err == nil {
		t.Errorf("a string with a bare quote read as %q", c.Text)
	}
}

// Whatever JSON string content holds, it reads as encoding/json reads it,
// and writes back as encoding/json writes it.
func FuzzContentJSON(f *testing.F) {
	for _, text := range contentCases {
		b, _ := json.Marshal(text)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var want string
		if json.Unmarshal(raw, &want) != nil {
			return
		}
		var c Content
		if err := json.Unmarshal(raw, &c); err != nil || c.Text != want {
			t.Fatalf("%q read as %q, want %q (%v)", raw, c.Text, want, err)
		}
		got, err := json.Marshal(c)
		again, _ := json.Marshal(want)
		if err != nil || !bytes.Equal(got, again) {
			t.Fatalf("%q written as %s, want %s (%v)", want, got, again, err)
		}
	})
}

func BenchmarkContentJSON(b *testing.B) {
	msg := []byte(`{"role":"user","content":"What should I plant after the long rains in Machakos, and when?"}`)
	b.ReportAllocs()
	for b.Loop() {
		var m Message
		if err := json.Unmarshal(msg, &m); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
}

// AppendJSONString writes what encoding/json writes for any string.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "<&>", "\u2028", "\xff", "a\x00b", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q:\n got %s\nwant %s", s, got, want)
		}
	})
}
