package local

import "strings"

// thinking splits the output of a model that thinks aloud (Qwen3: an answer
// that opens with <think>, its reasoning, </think>) into reasoning_content
// and content as the text streams in. A tag cut across tokens, and newlines
// that may turn out to border a tag, are held back until the next text
// decides, so that any chunking gives the same split.
type thinking struct {
	state int
	held  string
	trim  bool // drop the newlines that follow a tag
}

const (
	thinkStart  = iota // nothing but perhaps the start of <think> yet
	thinkIn            // inside the reasoning
	thinkAnswer        // after it, or no reasoning at all
)

const openTag, closeTag = "<think>", "</think>"

// add takes the next text and returns what it adds to the reasoning and to
// the answer. A nil splitter passes everything to the answer.
func (s *thinking) add(text string) (reasoning, content string) {
	if s == nil {
		return "", text
	}
	buf := s.held + text
	s.held = ""
	if s.trim {
		if buf = strings.TrimLeft(buf, "\n"); buf == "" {
			return "", ""
		}
		s.trim = false
	}
	if s.state == thinkStart {
		trimmed := strings.TrimLeft(buf, " \t\n")
		switch {
		case strings.HasPrefix(trimmed, openTag):
			s.state, s.trim = thinkIn, true
			return s.add(trimmed[len(openTag):])
		case strings.HasPrefix(openTag, trimmed):
			s.held = buf // all of it may still be the tag
			return "", ""
		}
		s.state = thinkAnswer
	}
	if s.state == thinkIn {
		if i := strings.Index(buf, closeTag); i >= 0 {
			s.state, s.trim = thinkAnswer, true
			_, content = s.add(buf[i+len(closeTag):])
			return strings.TrimRight(buf[:i], "\n"), content
		}
		keep := 0
		for k := min(len(closeTag)-1, len(buf)); k > 0; k-- {
			if strings.HasPrefix(closeTag, buf[len(buf)-k:]) {
				keep = k
				break
			}
		}
		body := strings.TrimRight(buf[:len(buf)-keep], "\n")
		s.held = buf[len(body):]
		return body, ""
	}
	return "", buf
}

// flush returns the text held back when the output ends.
func (s *thinking) flush() (reasoning, content string) {
	if s == nil {
		return "", ""
	}
	held := s.held
	s.held = ""
	if s.state == thinkIn {
		return held, ""
	}
	return "", held
}
