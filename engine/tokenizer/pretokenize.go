package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The pre-tokenizers split text into words the way the models' regular
// expressions do. Go's regexp has no lookahead (\s+(?!\S)), so each regex is an
// ordered alternation written out by hand: at every position the first
// alternative that matches wins, as in the regex engines the models used.
//
// llama3 (Llama 3), and qwen2 with \p{N} instead of \p{N}{1,3}:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//	 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// gpt2:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+

// Character classes.
const (
	clsOther = iota // [^\s\p{L}\p{N}]
	clsLetter
	clsNumber
	clsSpace
)

var asciiClass [utf8.RuneSelf]uint8

func init() {
	for r := range rune(utf8.RuneSelf) {
		asciiClass[r] = classOf(r)
	}
}

func classOf(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case unicode.IsSpace(r):
		return clsSpace
	}
	return clsOther
}

// next decodes the rune at s[i:] and its class; invalid bytes count as one
// character of class other.
func next(s string, i int) (r rune, size int, cls uint8) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1, asciiClass[c]
	}
	r, size = utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size == 1 {
		return r, 1, clsOther
	}
	return r, size, classOf(r)
}

// skip returns the end of the run of class cls starting at i, stopping after
// max characters when max > 0.
func skip(s string, i int, cls uint8, max int) int {
	for n := 0; i < len(s) && (max == 0 || n < max); n++ {
		_, size, c := next(s, i)
		if c != cls {
			break
		}
		i += size
	}
	return i
}

// contraction returns the length of 's 't 're 've 'm 'll 'd at s[i:], or 0.
func contraction(s string, i int, fold bool) int {
	if i >= len(s) || s[i] != '\'' {
		return 0
	}
	lower := func(j int) byte {
		if j >= len(s) {
			return 0
		}
		if c := s[j]; fold && c >= 'A' && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return s[j]
	}
	switch a, b := lower(i+1), lower(i+2); {
	case a == 's' || a == 't' || a == 'm' || a == 'd':
		return 2
	case a == 'r' && b == 'e', a == 'v' && b == 'e', a == 'l' && b == 'l':
		return 3
	}
	return 0
}

// spaces matches \s*[\r\n]+ (when newline), then \s+(?!\S), then \s+ at s[i:],
// which starts with whitespace.
func spaces(s string, i int, newline bool) int {
	end, last, lastNL, n := i, i, -1, 0
	for end < len(s) {
		r, size, c := next(s, end)
		if c != clsSpace {
			break
		}
		if r == '\r' || r == '\n' {
			lastNL = end
		}
		last = end
		end += size
		n++
	}
	switch {
	case newline && lastNL >= 0:
		return lastNL + 1 - i
	case end == len(s) || n == 1:
		return end - i
	}
	return last - i // leave the last space to the word that follows
}

func splitLlama3(s string, words []string) []string { return splitWith(s, words, 3) }
func splitQwen2(s string, words []string) []string  { return splitWith(s, words, 1) }

func splitWith(s string, words []string, digits int) []string {
	for i := 0; i < len(s); {
		n := matchLlama3(s, i, digits)
		words = append(words, s[i:i+n])
		i += n
	}
	return words
}

func matchLlama3(s string, i, digits int) int {
	if n := contraction(s, i, true); n > 0 {
		return n
	}
	r, size, c := next(s, i)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	j := i
	if c != clsLetter && c != clsNumber && r != '\r' && r != '\n' {
		j += size
	}
	if j < len(s) {
		if _, _, c2 := next(s, j); c2 == clsLetter {
			return skip(s, j, clsLetter, 0) - i
		}
	}
	if c == clsNumber {
		return skip(s, i, clsNumber, digits) - i
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	j = i
	if r == ' ' {
		j++
	}
	if j < len(s) {
		if _, _, c2 := next(s, j); c2 == clsOther {
			j = skip(s, j, clsOther, 0)
			for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
				j++
			}
			return j - i
		}
	}
	if c == clsSpace {
		return spaces(s, i, true)
	}
	return size
}

func splitGPT2(s string, words []string) []string {
	for i := 0; i < len(s); {
		n := matchGPT2(s, i)
		words = append(words, s[i:i+n])
		i += n
	}
	return words
}

func matchGPT2(s string, i int) int {
	if n := contraction(s, i, false); n > 0 {
		return n
	}
	r, _, c := next(s, i)
	j := i
	if r == ' ' && i+1 < len(s) {
		j++
		_, _, c = next(s, j)
	}
	if c != clsSpace {
		return skip(s, j, c, 0) - i
	}
	return spaces(s, i, false)
}

// splitSmolLM first isolates every \p{N} character, then applies the GPT-2
// expression to the text between them (llama.cpp's "smollm" pre-tokenizer).
func splitSmolLM(s string, words []string) []string {
	start := 0
	for i := 0; i < len(s); {
		_, size, c := next(s, i)
		if c == clsNumber {
			words = splitGPT2(s[start:i], words)
			words = append(words, s[i:i+size])
			start = i + size
		}
		i += size
	}
	return splitGPT2(s[start:], words)
}
