package local

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"

	"aigrid"
	"aigrid/engine"
	"aigrid/engine/chat"
	"aigrid/engine/sample"
	"aigrid/engine/tokenizer"
)

// Chat renders the conversation with the model's chat template and
// generates the answer, streamed token by token when req.Stream is set.
func (p *Provider) Chat(ctx context.Context, offer *aigrid.Offer, req *aigrid.ChatRequest, emit func(*aigrid.ChatChunk) error) (*aigrid.ChatResponse, error) {
	s, err := p.begin(offer)
	if err != nil {
		return nil, err
	}
	defer p.inflight.Done()
	gen, err := s.request(req)
	if err != nil {
		return nil, err
	}
	tok := s.m.Tok
	if req.Stream {
		return s.stream(ctx, gen, req, emit)
	}
	var reasoning, text []byte
	th := s.thinking()
	var lp *aigrid.Logprobs
	if req.Logprobs {
		lp = &aigrid.Logprobs{Content: []aigrid.TokenLogprob{}}
	}
	res, err := s.sched.Generate(ctx, gen, func(o engine.Output) error {
		r, c := th.add(o.Text)
		reasoning, text = append(reasoning, r...), append(text, c...)
		if lp != nil && !o.EOG {
			lp.Content = append(lp.Content, logprob(tok, o.Token))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r, c := th.flush()
	reasoning, text = append(reasoning, r...), append(text, c...)
	return &aigrid.ChatResponse{
		Object: "chat.completion",
		Model:  offer.Model,
		Choices: []aigrid.Choice{{
			Message: aigrid.Message{Role: aigrid.RoleAssistant, Content: aigrid.TextContent(string(text)),
				ReasoningContent: string(reasoning)},
			FinishReason: string(res.Finish),
			Logprobs:     lp,
		}},
		Usage: usage(res),
	}, nil
}

// stream passes each decoded token on as a chunk: the first carries the
// assistant's role, the last the finish reason, and one more, with no
// choices, the usage (the grid shows it to clients that asked for it).
func (s *served) stream(ctx context.Context, gen *engine.Request, req *aigrid.ChatRequest, emit func(*aigrid.ChatChunk) error) (*aigrid.ChatResponse, error) {
	tok := s.m.Tok
	var chunk aigrid.ChatChunk
	choice := make([]aigrid.ChunkChoice, 1)
	send := func(d aigrid.Delta, lp *aigrid.Logprobs, finish *string, more bool) error {
		choice[0] = aigrid.ChunkChoice{Delta: d, Logprobs: lp, FinishReason: finish}
		chunk = aigrid.ChatChunk{Object: "chat.completion.chunk", Choices: choice, More: more}
		return emit(&chunk)
	}
	th := s.thinking()
	// text sends what a token adds to the reasoning or the answer (an empty
	// answer when only logprobs are new).
	text := func(r, c string, l *aigrid.Logprobs, more bool) error {
		var d aigrid.Delta
		if r != "" {
			d.ReasoningContent = &r
		}
		if c != "" || r == "" {
			d.Content = &c
		}
		return send(d, l, nil, more)
	}
	started := false
	var lp aigrid.Logprobs
	entry := make([]aigrid.TokenLogprob, 1)
	res, err := s.sched.Generate(ctx, gen, func(o engine.Output) error {
		if !started {
			// The role goes out with the first token, not before: until then
			// the grid may still fail over to another offer.
			started = true
			empty := ""
			if err := send(aigrid.Delta{Role: aigrid.RoleAssistant, Content: &empty}, nil, nil, true); err != nil {
				return err
			}
		}
		var l *aigrid.Logprobs
		if req.Logprobs && !o.EOG {
			entry[0] = logprob(tok, o.Token)
			lp.Content = entry
			l = &lp
		}
		r, c := th.add(o.Text)
		if r == "" && c == "" && l == nil {
			return nil
		}
		return text(r, c, l, o.Finish != "")
	})
	if err != nil {
		return nil, err
	}
	if r, c := th.flush(); r != "" || c != "" {
		if err := text(r, c, nil, true); err != nil {
			return nil, err
		}
	}
	finish := string(res.Finish)
	if err := send(aigrid.Delta{}, nil, &finish, true); err != nil {
		return nil, err
	}
	u := usage(res)
	chunk = aigrid.ChatChunk{Object: "chat.completion.chunk", Choices: []aigrid.ChunkChoice{}, Usage: u}
	if err := emit(&chunk); err != nil {
		return nil, err
	}
	return &aigrid.ChatResponse{Object: "chat.completion", Usage: u,
		Choices: []aigrid.Choice{{FinishReason: finish}}}, nil
}

// thinking returns the splitter of reasoning from answer for the models
// whose template has them think aloud, nil for the others.
func (s *served) thinking() *thinking {
	if s.tmpl.Family == chat.Qwen3 {
		return &thinking{}
	}
	return nil
}

func usage(r *engine.Result) *aigrid.Usage {
	return &aigrid.Usage{PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens,
		TotalTokens:         r.PromptTokens + r.CompletionTokens,
		PromptTokensDetails: &aigrid.PromptTokensDetails{CachedTokens: r.CachedTokens}}
}

// logprob is a sampled token as OpenAI reports it: its text, its bytes (a
// token may hold part of a character) and the likeliest alternatives.
func logprob(tok *tokenizer.Tokenizer, t sample.Token) aigrid.TokenLogprob {
	text, b := tokenBytes(tok, t.ID)
	e := aigrid.TokenLogprob{Token: text, Logprob: float64(t.Logprob), Bytes: b, TopLogprobs: make([]aigrid.TopLogprob, len(t.Top))}
	for i, a := range t.Top {
		text, b := tokenBytes(tok, a.ID)
		e.TopLogprobs[i] = aigrid.TopLogprob{Token: text, Logprob: float64(a.Logprob), Bytes: b}
	}
	return e
}

func tokenBytes(tok *tokenizer.Tokenizer, id int32) (string, []int) {
	s := tok.Decode([]int32{id}, true)
	b := make([]int, len(s))
	for i := range len(s) {
		b[i] = int(s[i])
	}
	return s, b
}

// request turns an OpenAI request into the engine's: the prompt rendered and
// tokenized, the sampling settings checked. What the engine cannot do is
// refused with a 400 that says so, rather than ignored.
func (s *served) request(req *aigrid.ChatRequest) (*engine.Request, error) {
	switch {
	case req.N != nil && *req.N != 1:
		return nil, aigrid.ParamErrorf("n", "The embedded engine returns one choice per request; n must be 1.")
	case req.WantsJSON():
		return nil, aigrid.ParamErrorf("response_format", "The embedded engine cannot constrain its output to JSON; response_format %q is not available on this model.", req.ResponseFormat.Type)
	case len(req.Tools) > 0:
		return nil, aigrid.ParamErrorf("tools", "The embedded engine does not call tools yet; send the request without tools.")
	}
	msgs := make([]chat.Message, 0, len(req.Messages))
	for i := range req.Messages {
		m := &req.Messages[i]
		if len(m.ToolCalls) > 0 {
			return nil, aigrid.ParamErrorf(fmt.Sprintf("messages[%d].tool_calls", i), "The embedded engine does not call tools yet; messages[%d] holds tool calls.", i)
		}
		if m.Content != nil {
			for j, part := range m.Content.Parts {
				if part.Type != aigrid.PartText && part.Type != aigrid.PartRefusal {
					return nil, aigrid.ParamErrorf(fmt.Sprintf("messages[%d].content[%d].type", i, j), "The model reads text only; messages[%d].content[%d] is of type %s.", i, j, part.Type)
				}
			}
		}
		role := m.Role
		if role == aigrid.RoleDeveloper {
			role = aigrid.RoleSystem
		}
		msgs = append(msgs, chat.Message{Role: role, Content: m.Content.String(), Reasoning: m.ReasoningContent})
	}
	pieces, err := s.tmpl.Pieces(msgs, chat.Options{AddGenerationPrompt: true, NoThinking: req.ReasoningEffort == "none"})
	if err != nil {
		return nil, aigrid.ParamErrorf("messages", "%v", err)
	}
	// Control tokens come from the template only: a message that writes
	// <|im_end|> gets the characters, not the end of its turn.
	gen := &engine.Request{Prompt: s.m.Tok.EncodePieces(pieces, true), Stop: req.Stop, MaxTokens: req.MaxOutputTokens()}

	// OpenAI's defaults: temperature 1, top_p 1, a fresh seed per request.
	sp := sample.Params{Temperature: 1, Logprobs: req.Logprobs, Seed: rand.Uint64()}
	if req.Temperature != nil {
		sp.Temperature = float32(*req.Temperature)
	}
	if req.TopP != nil {
		sp.TopP = float32(*req.TopP)
	}
	if req.Seed != nil {
		sp.Seed = uint64(*req.Seed)
	}
	if req.PresencePenalty != nil {
		sp.PresencePenalty = float32(*req.PresencePenalty)
	}
	if req.FrequencyPenalty != nil {
		sp.FrequencyPenalty = float32(*req.FrequencyPenalty)
	}
	if req.TopLogprobs != nil {
		sp.TopLogprobs = *req.TopLogprobs
	}
	if len(req.LogitBias) > 0 {
		sp.LogitBias = make(map[int32]float32, len(req.LogitBias))
		for k, v := range req.LogitBias {
			id, err := strconv.ParseInt(k, 10, 32)
			if err != nil || id < 0 || int(id) >= s.m.Vocab {
				return nil, aigrid.ParamErrorf("logit_bias", "logit_bias key %q is not a token id of this model (0 to %d).", k, s.m.Vocab-1)
			}
			sp.LogitBias[int32(id)] = float32(v)
		}
	}
	if err := sp.Validate(); err != nil {
		return nil, aigrid.ParamErrorf("", "%v", err)
	}
	gen.Sampling = sp
	return gen, nil
}
