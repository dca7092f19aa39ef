package sample

import "strings"

// Finish is why generation ended: "" while it goes on, then Stop (a stop
// string or an end-of-generation token) or Length (max tokens), the values of
// OpenAI's finish_reason.
type Finish string

const (
	Stop   Finish = "stop"
	Length Finish = "length"
)

// Text follows the generated text token by token: it ends generation at an
// end-of-generation token, at the first stop string (which may span tokens)
// or after max tokens, and holds back any text that could be the start of a
// stop string until the next tokens decide, so that a stream never shows part
// of a stop.
type Text struct {
	stops []string
	max   int
	n     int
	held  string
	done  Finish
}

// NewText follows a generation of at most maxTokens tokens (0: no limit)
// that stops at any of stops (empty strings are ignored).
func NewText(stops []string, maxTokens int) *Text {
	t := &Text{max: maxTokens}
	for _, s := range stops {
		if s != "" {
			t.stops = append(t.stops, s)
		}
	}
	return t
}

// Tokens is the number of tokens added.
func (t *Text) Tokens() int { return t.n }

// Add takes the next token's text (from a streaming decoder) and whether the
// token ends generation, and returns the text that may be shown now and, once
// generation is over, why. Adding after the finish returns nothing.
func (t *Text) Add(piece string, eog bool) (string, Finish) {
	if t.done != "" {
		return "", t.done
	}
	t.n++
	if eog {
		t.done = Stop
		out := t.held
		t.held = ""
		return out, Stop
	}
	buf := t.held + piece
	cut := -1
	for _, s := range t.stops {
		if i := strings.Index(buf, s); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		t.done, t.held = Stop, ""
		return buf[:cut], Stop
	}
	if t.max > 0 && t.n >= t.max {
		t.done, t.held = Length, ""
		return buf, Length
	}
	keep := 0
	for _, s := range t.stops {
		// The longest end of buf that begins s.
		for k := min(len(s)-1, len(buf)); k > keep; k-- {
			if strings.HasPrefix(s, buf[len(buf)-k:]) {
				keep = k
				break
			}
		}
	}
	t.held = buf[len(buf)-keep:]
	return buf[:len(buf)-keep], ""
}

// Flush returns the text still held back, when generation ends for a reason
// Text did not see (the caller's own limit, a closed stream).
func (t *Text) Flush() string {
	out := t.held
	t.held = ""
	return out
}
