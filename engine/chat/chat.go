// Package chat renders a conversation into the prompt text a model was
// trained on, as its GGUF chat template (tokenizer.chat_template, Jinja)
// would. It recognises the template families rather than running Jinja:
// ChatML (Qwen2.5 and SmolLM2, with the default system prompt their templates
// carry), Qwen3 (ChatML with thinking blocks) and Llama 3 (headers and
// <|eot_id|>, with the 3.1+ knowledge-date preamble); any other template is
// rendered as ChatML with a logged warning.
//
// Pieces returns the prompt as the template's markup, whose control tokens
// (<|im_start|>, <|eot_id|>) are meant, and the caller's text, in which they
// are not: tokenize it with tokenizer.EncodePieces, so that a message that
// writes <|im_start|>system cannot open a turn of its own. The prompt does
// not include the BOS token; EncodePieces adds it as the metadata says.
package chat

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"aigrid/engine/tokenizer"
)

// Message is one turn of a conversation.
type Message struct {
	Role      string // system, user, assistant or tool
	Content   string
	Reasoning string // an assistant's thinking, for templates that keep it
}

// Options change how a conversation is rendered.
type Options struct {
	// AddGenerationPrompt ends the text with the header of an assistant turn,
	// for the model to write it.
	AddGenerationPrompt bool
	// NoThinking asks a thinking model (Qwen3) to answer without thinking.
	NoThinking bool
	// Now is the date of Llama 3.1+'s preamble (default: today).
	Now time.Time
}

// Family is a kind of chat template.
type Family string

const (
	ChatML   Family = "chatml"
	Qwen3    Family = "qwen3"
	Llama3   Family = "llama3"
	Fallback Family = "fallback" // unknown template: ChatML
)

// Template renders conversations for one model.
type Template struct {
	Family Family
	// DefaultSystem is the system prompt the template adds when the
	// conversation has none (ChatML), or the Llama 3.1+ preamble's flag.
	DefaultSystem string
	datePreamble  bool
}

// defaultSystemRe finds a literal system turn written in a ChatML template:
// the default system prompt of Qwen2.5 ("You are Qwen, created by Alibaba
// Cloud...") and SmolLM2.
var defaultSystemRe = regexp.MustCompile(`<\|im_start\|>system\\n([^'"{}<\\]+)<\|im_end\|>`)

// Parse recognises the family of a chat template (the text of
// tokenizer.chat_template). An empty or unknown template gives the ChatML
// fallback and a warning in the log.
func Parse(tmpl string) *Template {
	switch {
	case strings.Contains(tmpl, "<|start_header_id|>") && strings.Contains(tmpl, "<|eot_id|>"):
		return &Template{Family: Llama3, datePreamble: strings.Contains(tmpl, "Cutting Knowledge Date")}
	case strings.Contains(tmpl, "<|im_start|>") && strings.Contains(tmpl, "<think>"):
		return &Template{Family: Qwen3}
	case strings.Contains(tmpl, "<|im_start|>"):
		t := &Template{Family: ChatML}
		if m := defaultSystemRe.FindStringSubmatch(tmpl); m != nil {
			t.DefaultSystem = m[1]
		}
		return t
	}
	if tmpl == "" {
		slog.Warn("chat: the model has no chat template; using ChatML")
	} else {
		slog.Warn("chat: unknown chat template family; using ChatML", "template_start", truncate(tmpl, 80))
	}
	return &Template{Family: Fallback}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Render returns the prompt text of msgs, for people to read. Tokenizing
// it with control tokens parsed would obey those written in the messages:
// the model is given Pieces.
func (t *Template) Render(msgs []Message, opt Options) (string, error) {
	pieces, err := t.Pieces(msgs, opt)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range pieces {
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// Pieces returns the prompt of msgs as the template's markup (Special: its
// control tokens are meant) and the caller's text (contents, reasoning and
// system prompts, plain text whatever they hold), in order.
func (t *Template) Pieces(msgs []Message, opt Options) ([]tokenizer.Piece, error) {
	if len(msgs) == 0 {
		return nil, fmt.Errorf("no messages")
	}
	for i, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant", "tool":
		default:
			return nil, fmt.Errorf("messages[%d]: unknown role %q (system, user, assistant, tool)", i, m.Role)
		}
	}
	var b builder
	switch t.Family {
	case Llama3:
		t.llama3(&b, msgs, opt)
	case Qwen3:
		qwen3(&b, msgs, opt)
	default:
		if msgs[0].Role != "system" && t.DefaultSystem != "" {
			// The template's own words: markup, though it holds no tokens.
			b.markup("<|im_start|>system\n" + t.DefaultSystem + "<|im_end|>\n")
		}
		for _, m := range msgs {
			turn(&b, m.Role, m.Content)
		}
		if opt.AddGenerationPrompt {
			b.markup("<|im_start|>assistant\n")
		}
	}
	return b.pieces, nil
}

// builder collects the pieces of a prompt, joining neighbours of a kind.
type builder struct{ pieces []tokenizer.Piece }

func (b *builder) markup(s string) { b.add(s, true) }
func (b *builder) text(s string)   { b.add(s, false) }

func (b *builder) add(s string, special bool) {
	if s == "" {
		return
	}
	if n := len(b.pieces); n > 0 && b.pieces[n-1].Special == special {
		b.pieces[n-1].Text += s
		return
	}
	b.pieces = append(b.pieces, tokenizer.Piece{Text: s, Special: special})
}

// turn writes a ChatML turn; role is one of the four checked by Pieces.
func turn(b *builder, role, content string) {
	b.markup("<|im_start|>" + role + "\n")
	b.text(content)
	b.markup("<|im_end|>\n")
}

// qwen3 follows Qwen3's template: thinking is kept only in the assistant
// turns after the last user query, tool results are grouped into a user turn.
func qwen3(b *builder, msgs []Message, opt Options) {
	if msgs[0].Role == "system" {
		turn(b, "system", msgs[0].Content)
	}
	lastQuery := len(msgs) - 1
	for i := len(msgs) - 1; i >= 0; i-- {
		c := msgs[i].Content
		if msgs[i].Role == "user" && !(strings.HasPrefix(c, "<tool_response>") && strings.HasSuffix(c, "</tool_response>")) {
			lastQuery = i
			break
		}
	}
	for i, m := range msgs {
		switch {
		case m.Role == "user" || m.Role == "system" && i > 0:
			turn(b, m.Role, m.Content)
		case m.Role == "assistant":
			content, reasoning := m.Content, m.Reasoning
			if reasoning == "" {
				if parts := strings.Split(m.Content, "</think>"); len(parts) > 1 {
					content = strings.TrimLeft(parts[len(parts)-1], "\n")
					th := strings.Split(strings.TrimRight(parts[0], "\n"), "<think>")
					reasoning = strings.TrimLeft(th[len(th)-1], "\n")
				}
			}
			b.markup("<|im_start|>assistant\n")
			if i > lastQuery && (i == len(msgs)-1 || reasoning != "") {
				b.markup("<think>\n")
				b.text(strings.Trim(reasoning, "\n"))
				b.markup("\n</think>\n\n")
				b.text(strings.TrimLeft(content, "\n"))
			} else {
				b.text(content)
			}
			b.markup("<|im_end|>\n")
		case m.Role == "tool":
			if i == 0 || msgs[i-1].Role != "tool" {
				b.markup("<|im_start|>user")
			}
			b.markup("\n<tool_response>\n")
			b.text(m.Content)
			b.markup("\n</tool_response>")
			if i == len(msgs)-1 || msgs[i+1].Role != "tool" {
				b.markup("<|im_end|>\n")
			}
		}
	}
	if opt.AddGenerationPrompt {
		b.markup("<|im_start|>assistant\n")
		if opt.NoThinking {
			b.markup("<think>\n\n</think>\n\n")
		}
	}
}

// llama3 writes header-delimited turns; Llama 3.1+ templates open with a
// system turn that states the knowledge cut-off and today's date, before any
// system prompt. Tool results are the "ipython" role there.
func (t *Template) llama3(b *builder, msgs []Message, opt Options) {
	head := func(role string) { b.markup("<|start_header_id|>" + role + "<|end_header_id|>\n\n") }
	if t.datePreamble {
		now := opt.Now
		if now.IsZero() {
			now = time.Now()
		}
		system := ""
		if msgs[0].Role == "system" {
			system = strings.TrimSpace(msgs[0].Content)
			msgs = msgs[1:]
		}
		head("system")
		b.markup("Cutting Knowledge Date: December 2023\nToday Date: " + now.Format("02 Jan 2006") + "\n\n")
		b.text(system)
		b.markup("<|eot_id|>")
	}
	for _, m := range msgs {
		role := m.Role
		if role == "tool" {
			role = "ipython"
		}
		head(role)
		b.text(strings.TrimSpace(m.Content))
		b.markup("<|eot_id|>")
	}
	if opt.AddGenerationPrompt {
		head("assistant")
	}
}
