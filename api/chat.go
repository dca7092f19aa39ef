package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"aigrid"
	"aigrid/internal/offstack"
	"aigrid/internal/openaierr"
)

// streamWriteTimeout bounds how long one chunk may wait for a client that has
// stopped reading, so that a stuck client cannot hold an offer forever.
const streamWriteTimeout = time.Minute

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request, call *aigrid.Call) {
	start := time.Now()
	body, err := readBody(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		writeError(w, r, err)
		return
	}
	req, err := decodeChatRequest(body)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !call.Key.AllowsModel(req.Model) {
		writeError(w, r, &aigrid.Error{Code: aigrid.EForbidden, Param: "model",
			Message: "This API key may not use the model " + quote(req.Model) + "."})
		return
	}
	call.Service = req.Model
	id := "chatcmpl-" + call.ID
	created := start.Unix()
	promptEstimate := req.EstimatePromptTokens()
	hold, err := s.reserve(r.Context(), w, call, aigrid.Estimate{PromptTokens: promptEstimate, MaxTokens: req.MaxOutputTokens()})
	if err != nil {
		writeError(w, r, err)
		return
	}

	var u aigrid.Usage // what was sold
	if req.Stream {
		sw := &sseWriter{w: w, rc: http.NewResponseController(w), call: call, id: id, created: created,
			includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage}
		resp, err := s.cfg.Dispatcher.Chat(r.Context(), call, req, func(c *aigrid.ChatChunk) error {
			if !sw.started {
				s.metrics.ttft.WithLabelValues(call.Service, call.Provider).Observe(time.Since(start).Seconds())
			}
			return sw.chunk(c)
		})
		if err != nil && !sw.started {
			s.release(hold)
			writeError(w, r, err)
			return
		}
		// Bytes reached the client: what was generated is sold, counted by the
		// grid when the provider could not report it. The ledger has it before
		// the client sees [DONE].
		estimated := !sw.sawUsage
		u = sw.usage
		if resp != nil && resp.Usage != nil {
			u, estimated = *resp.Usage, resp.Usage.Estimated
		} else if estimated {
			u = aigrid.Usage{PromptTokens: promptEstimate, CompletionTokens: sw.outputChunks, TotalTokens: promptEstimate + sw.outputChunks}
		}
		if serr := s.settle(w, r, call, hold, u, estimated); serr != nil && err == nil {
			err = serr
		}
		if err == nil && sw.includeUsage && !sw.sawUsage {
			// The provider sent no count: the client that asked for one
			// gets what it is charged for.
			err = sw.chunk(&aigrid.ChatChunk{Choices: []aigrid.ChunkChoice{}, Usage: &u})
		}
		if err != nil {
			// The status is sent, so the error travels in the stream, as OpenAI sends it.
			sw.fail(r, err)
		} else {
			sw.done()
		}
	} else {
		resp, err := s.cfg.Dispatcher.Chat(r.Context(), call, req, nil)
		if err != nil {
			s.release(hold)
			writeError(w, r, err)
			return
		}
		counted := resp.Usage
		if counted == nil {
			counted = req.EstimateUsage(resp.CompletionChars())
		}
		u = *counted
		if err := s.settle(w, r, call, hold, u, counted.Estimated); err != nil {
			writeError(w, r, err)
			return
		}
		resp.ID, resp.Object, resp.Created, resp.Model = id, "chat.completion", created, call.Service
		if resp.Choices == nil {
			resp.Choices = []aigrid.Choice{}
		}
		setOffer(w, call)
		writeJSON(w, http.StatusOK, resp)
	}
	s.countUsage(w, r, call, &u)
}

// countUsage records the tokens of a served call in the metrics and the log.
func (s *Server) countUsage(w http.ResponseWriter, r *http.Request, call *aigrid.Call, u *aigrid.Usage) {
	class := string(call.Tenant.Class)
	s.metrics.tokens.WithLabelValues("in", call.Service, call.Provider, class).Add(float64(u.PromptTokens))
	s.metrics.tokens.WithLabelValues("out", call.Service, call.Provider, class).Add(float64(u.CompletionTokens))
	if logEnabled(w, r, slog.LevelInfo) {
		logger(w).Info("served", "tenant", call.Tenant.Name, "service_model", call.Service, "provider", call.Provider,
			"attempts", call.Attempts, "prompt_tokens", u.PromptTokens, "completion_tokens", u.CompletionTokens)
	}
}

// setOffer names the offer that served the call, and marks a brownout.
func setOffer(w http.ResponseWriter, call *aigrid.Call) {
	if call.Offer == nil {
		return
	}
	v := call.Provider + "/" + call.Offer.Model
	if call.BrownoutFrom != "" {
		v += "; brownout-from=" + call.BrownoutFrom
	}
	w.Header().Set("X-Aigrid-Offer", v)
}

// bufPool holds the streams' event buffers, each taken for the events of one
// write: a stream waiting for its next chunk holds none. A pointer keeps Put
// free of allocation.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// burstBytes bounds the events a stream gathers before it writes them, when
// the provider has more at hand.
const burstBytes = 8 << 10

// sseWriter writes chunks to the client as server-sent events, with the
// response's own id and the service model's name in place of the upstream's.
//
// Each write wakes the client, so events are gathered while more are at hand
// (c.More) and written together; a chunk the provider waited for leaves at
// once. The final chunks (finish reason, usage) wait for [DONE], which waits
// for the meter's settlement anyway: a short completion that arrives whole
// leaves in one write.
type sseWriter struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	call         *aigrid.Call
	id           string
	created      int64
	includeUsage bool
	started      bool
	deadline     time.Time // the connection's write deadline, as last set; zero before the first write
	out          *[]byte   // events not written yet, nil when none
	// head is every event's start, up to the chunk's choices, in headBuf
	// unless it is longer.
	head    []byte
	headBuf [192]byte
	// usage is the provider's count, when a chunk carried it; outputChunks
	// counts the chunks that carried output, the grid's own estimate of the
	// tokens sent when a stream ends before the provider counts.
	usage        aigrid.Usage
	sawUsage     bool
	outputChunks int
}

// The headers of every stream, in canonical form, shared: net/http copies a
// handler's headers when it writes them, and a slice whose capacity is its
// length is never appended to in place.
var (
	eventStream = []string{"text/event-stream"}
	noCache     = []string{"no-cache"}
	no          = []string{"no"}
)

func (sw *sseWriter) begin() {
	sw.started = true
	h := sw.w.Header()
	h["Content-Type"] = eventStream[:1:1]
	h["Cache-Control"] = noCache[:1:1]
	h["X-Accel-Buffering"] = no[:1:1]
	setOffer(sw.w, sw.call)
	sw.w.WriteHeader(http.StatusOK)
}

func (sw *sseWriter) chunk(c *aigrid.ChatChunk) error {
	if c.Usage != nil {
		sw.usage, sw.sawUsage = *c.Usage, true
	}
	// final: every choice has finished, so only usage and [DONE] follow.
	output, final := false, true
	if raw := &c.Raw; raw.JSON != nil {
		output, final = raw.Output, raw.Finished == raw.Count
	}
	for i := range c.Choices {
		d := &c.Choices[i].Delta
		output = output || d.Content != nil && *d.Content != "" || d.ReasoningContent != nil && *d.ReasoningContent != "" || len(d.ToolCalls) > 0
		final = final && c.Choices[i].FinishReason != nil
	}
	if output {
		sw.outputChunks++
	}
	if c.Usage != nil && !sw.includeUsage {
		if len(c.Choices) == 0 && c.Raw.JSON == nil {
			return nil
		}
		c.Usage = nil
	}
	if !sw.started {
		sw.begin()
	}
	if c.Choices == nil && c.Raw.JSON == nil {
		c.Choices = []aigrid.ChunkChoice{}
	}
	if sw.head == nil {
		sw.head = appendChunkHead(append(sw.headBuf[:0], "data: "...), sw.id, "chat.completion.chunk", sw.created, sw.call.Service)
	}
	sw.take()
	n := len(*sw.out)
	b, err := appendChunkRest(append(*sw.out, sw.head...), c)
	if err != nil {
		*sw.out = b[:n]
		return err
	}
	*sw.out = append(b, '\n', '\n')
	switch {
	case len(*sw.out) >= burstBytes:
		return sw.send(!c.More && !final)
	case c.More || final:
		return nil
	}
	return sw.send(true)
}

// send writes the events gathered, and flushes them to the client when
// flush is set; otherwise the next flush, or the end of the response, does.
func (sw *sseWriter) send(flush bool) error {
	// A write waits for a client that stopped reading for at least half of
	// streamWriteTimeout and at most all of it: renewing the deadline only
	// when half of it is gone spares a timer update on most writes.
	first := sw.deadline.IsZero() // the headers have not gone out yet
	if now := time.Now(); sw.deadline.Sub(now) < streamWriteTimeout/2 {
		sw.deadline = now.Add(streamWriteTimeout)
		sw.rc.SetWriteDeadline(sw.deadline)
	}
	var err error
	if first {
		err = sw.writeFirst(flush)
	} else {
		err = sw.write(flush)
	}
	sw.release()
	return err
}

// writeFirst sends the headers, through a 2.8 KiB frame of net/http's: off
// the handler's stack (see decodeChatRequest). (Apart from send, so that
// only the first write pays for what the hand-off captures.)
func (sw *sseWriter) writeFirst(flush bool) (err error) {
	offstack.Run(func() { err = sw.write(flush) })
	return err
}

func (sw *sseWriter) write(flush bool) error {
	if _, err := sw.w.Write(*sw.out); err != nil {
		return errClientGone
	}
	if flush && sw.rc.Flush() != nil {
		return errClientGone
	}
	return nil
}

// done ends the stream. Its write is not flushed: the handler returns next,
// and net/http flushes it with the end of the chunked body, in one write.
func (sw *sseWriter) done() {
	if !sw.started {
		sw.begin()
	}
	sw.take()
	*sw.out = append(*sw.out, "data: [DONE]\n\n"...)
	sw.send(false)
}

// fail ends the stream with an error event, after the events gathered.
func (sw *sseWriter) fail(r *http.Request, err error) {
	if errors.Is(err, errClientGone) || r.Context().Err() != nil {
		sw.release()
		return
	}
	e := openaierr.From(err)
	_, typ := openaierr.Status(e.Code)
	if e.Code == aigrid.EInternal {
		logger(sw.w).Error("stream failed", "error", err.Error())
	}
	body, _ := json.Marshal(openaierr.Detailed(e, typ))
	sw.take()
	*sw.out = append(append(append(*sw.out, "data: "...), body...), '\n', '\n')
	sw.send(false)
}

// take makes sure there is a buffer to gather events in.
func (sw *sseWriter) take() {
	if sw.out == nil {
		sw.out = bufPool.Get().(*[]byte)
		*sw.out = (*sw.out)[:0]
	}
}

func (sw *sseWriter) release() {
	if sw.out == nil {
		return
	}
	// A buffer grown by one huge chunk is left to the collector.
	if cap(*sw.out) <= 64<<10 {
		bufPool.Put(sw.out)
	}
	sw.out = nil
}

// errClientGone stops a stream whose client went away.
var errClientGone = errors.New("client went away")

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
