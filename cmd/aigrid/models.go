package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"

	"aigrid/engine/chat"
	"aigrid/engine/gguf"
	"aigrid/engine/model"
	"aigrid/engine/sample"
	"aigrid/engine/tensor"
)

// runModels inspects GGUF model files and runs them with the embedded engine.
func runModels(args []string, stdout io.Writer) error {
	verb, args, err := subcommand("models", args, "inspect|generate")
	if err != nil {
		return err
	}
	switch verb {
	case "inspect":
		return runModelsInspect(args, stdout)
	case "generate":
		return runModelsGenerate(args, stdout)
	}
	return fmt.Errorf("unknown models command %q (inspect, generate)", verb)
}

// localFlags parses the flags of a command that runs here, with no server.
func localFlags(name, usage string, args []string, out io.Writer, define func(*flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var help bytes.Buffer
	fs.SetOutput(&help)
	define(fs)
	fs.Usage = func() {
		// The flag package has just written its error here; the error
		// returned carries it already, so it would show twice.
		help.Reset()
		fmt.Fprintf(&help, "usage: %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		io.Copy(out, &help)
		return nil, errUsageShown
	}
	if err != nil {
		return nil, fmt.Errorf("%v\n%s", err, help.String())
	}
	return pos, nil
}

// modelInfo is what inspect reports.
type modelInfo struct {
	Path          string         `json:"path"`
	Bytes         int64          `json:"bytes"`
	Name          string         `json:"name,omitempty"`
	Architecture  string         `json:"architecture"`
	Quantization  string         `json:"quantization"`
	TensorTypes   map[string]int `json:"tensor_types"`
	Parameters    uint64         `json:"parameters"`
	ContextLength int            `json:"context_length"`
	Embedding     int            `json:"embedding_length"`
	Layers        int            `json:"layers"`
	FeedForward   int            `json:"feed_forward_length"`
	Heads         int            `json:"heads"`
	KVHeads       int            `json:"kv_heads"`
	HeadDim       int            `json:"head_dim"`
	RopeBase      float32        `json:"rope_freq_base"`
	RopeScaling   string         `json:"rope_scaling"`
	Tokenizer     tokenizerInfo  `json:"tokenizer"`
	Template      string         `json:"chat_template_family"`
	KVPerToken    int            `json:"kv_bytes_per_token"`
}

type tokenizerInfo struct {
	Model string `json:"model"`
	Pre   string `json:"pre,omitempty"`
	Vocab int    `json:"vocab_size"`
	BOS   int32  `json:"bos_token_id"`
	EOS   int32  `json:"eos_token_id"`
}

// fileTypes names general.file_type as llama.cpp does.
var fileTypes = map[uint32]string{0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
	10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
	17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}

func runModelsInspect(args []string, stdout io.Writer) error {
	var asJSON bool
	const usage = "aigrid models inspect FILE [--json]"
	pos, err := localFlags("models inspect", usage, args, stdout, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, usage); err != nil {
		return err
	}
	m, err := model.Load(pos[0])
	if err != nil {
		return err
	}
	defer m.Close()
	info := inspect(pos[0], m)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	types := make([]string, 0, len(info.TensorTypes))
	for t, n := range info.TensorTypes {
		types = append(types, fmt.Sprintf("%s×%d", t, n))
	}
	slices.Sort(types)
	tok := info.Tokenizer
	for _, row := range [][2]string{
		{"file", fmt.Sprintf("%s (%.1f MiB)", info.Path, float64(info.Bytes)/(1<<20))},
		{"name", info.Name},
		{"architecture", info.Architecture},
		{"quantization", info.Quantization + " (" + strings.Join(types, ", ") + ")"},
		{"parameters", fmt.Sprintf("%d (%.2f B)", info.Parameters, float64(info.Parameters)/1e9)},
		{"context", fmt.Sprint(info.ContextLength)},
		{"shape", fmt.Sprintf("%d layers, width %d, feed-forward %d, %d heads (%d key/value) of %d",
			info.Layers, info.Embedding, info.FeedForward, info.Heads, info.KVHeads, info.HeadDim)},
		{"rope", fmt.Sprintf("base %g, scaling %s", info.RopeBase, info.RopeScaling)},
		{"tokenizer", fmt.Sprintf("%s %s, %d tokens, BOS %d, EOS %d", tok.Model, tok.Pre, tok.Vocab, tok.BOS, tok.EOS)},
		{"chat template", info.Template},
		{"KV cache", fmt.Sprintf("%d KiB per token", info.KVPerToken>>10)},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

func inspect(path string, m *model.Model) modelInfo {
	f := m.File
	info := modelInfo{Path: path, Architecture: m.Arch, TensorTypes: map[string]int{},
		ContextLength: m.Context, Embedding: m.Dim, Layers: m.Layers, FeedForward: m.FFN,
		Heads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim, RopeBase: m.RopeBase,
		RopeScaling: m.RopeScaling, KVPerToken: m.KVBytesPerToken()}
	if st, err := os.Stat(path); err == nil {
		info.Bytes = st.Size()
	}
	info.Name, _ = f.String("general.name")
	for _, t := range f.Tensors() {
		info.TensorTypes[t.Type.String()]++
		info.Parameters += t.Elements()
	}
	if ft, err := f.Uint32("general.file_type"); err == nil {
		info.Quantization = fileTypes[ft]
	}
	if info.Quantization == "" {
		info.Quantization = "unknown"
	}
	info.Tokenizer.Model, _ = f.String("tokenizer.ggml.model")
	info.Tokenizer.Pre, _ = f.String("tokenizer.ggml.pre")
	info.Tokenizer.Vocab = m.Tok.Len()
	info.Tokenizer.BOS, info.Tokenizer.EOS = m.Tok.BOS(), m.Tok.EOS()
	tmpl, err := f.String("tokenizer.chat_template")
	switch {
	case errors.Is(err, gguf.ErrMissing):
		info.Template = "none"
	default:
		info.Template = string(chat.Parse(tmpl).Family)
	}
	return info
}

func runModelsGenerate(args []string, stdout io.Writer) error {
	var (
		prompt    string
		maxTokens int
		params    sample.Params
		seed      uint64
		threads   int
		asJSON    bool
	)
	const usage = "aigrid models generate FILE --prompt TEXT [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--threads N] [--json]"
	pos, err := localFlags("models generate", usage, args, stdout, func(fs *flag.FlagSet) {
		fs.StringVar(&prompt, "prompt", "", "raw prompt text (no chat template; BOS as the model's metadata says; control tokens such as <|im_start|> are recognised)")
		fs.IntVar(&maxTokens, "max-tokens", 64, "most tokens to generate")
		f32 := func(p *float32, name string, def float64, doc string) {
			fs.Func(name, fmt.Sprintf("%s (default %g)", doc, def), func(s string) error {
				var v float64
				_, err := fmt.Sscan(s, &v)
				*p = float32(v)
				return err
			})
			*p = float32(def)
		}
		f32(&params.Temperature, "temperature", 0, "sampling temperature; 0 is greedy")
		f32(&params.TopP, "top-p", 1, "nucleus sampling mass")
		fs.IntVar(&params.TopK, "top-k", 0, "sample among the K most likely tokens (0: all)")
		fs.Uint64Var(&seed, "seed", 0, "random seed: the same seed gives the same text")
		fs.IntVar(&threads, "threads", runtime.NumCPU(), "compute threads")
		fs.BoolVar(&asJSON, "json", false, `print {"prompt_ids": [...], "ids": [...], "text": "..."}`)
	})
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, usage); err != nil {
		return err
	}
	if prompt == "" {
		return fmt.Errorf("--prompt is required\nusage: %s", usage)
	}
	if maxTokens < 1 || threads < 1 {
		return fmt.Errorf("--max-tokens and --threads must be at least 1")
	}
	params.Seed = seed
	sm, err := sample.New(params)
	if err != nil {
		return err
	}
	m, err := model.Load(pos[0])
	if err != nil {
		return err
	}
	defer m.Close()
	pool := tensor.NewPool(threads)
	defer pool.Close()
	w := m.NewWorker(pool)

	promptIDs := m.Tok.Encode(prompt, true, true)
	if len(promptIDs) == 0 || len(promptIDs) >= m.Context {
		return fmt.Errorf("the prompt has %d tokens; the model takes 1 to %d", len(promptIDs), m.Context-1)
	}
	seq := m.NewSeq()
	dec := m.Tok.NewDecoder(false)
	var text strings.Builder
	ids := []int32{}
	tokens := promptIDs
	for len(ids) < maxTokens {
		out, err := w.Forward([]model.Step{{Seq: seq, Tokens: tokens}})
		if errors.Is(err, model.ErrContext) {
			break // the context is full: stop as at max tokens
		}
		if err != nil {
			return err
		}
		id := sm.Sample(out[0]).ID
		if m.Tok.IsEOG(id) {
			break
		}
		ids = append(ids, id)
		text.WriteString(dec.Add(id))
		tokens = []int32{id}
	}
	text.WriteString(dec.Flush())
	if !asJSON {
		_, err := fmt.Fprintln(stdout, text.String())
		return err
	}
	return json.NewEncoder(stdout).Encode(struct {
		PromptIDs []int32 `json:"prompt_ids"`
		IDs       []int32 `json:"ids"`
		Text      string  `json:"text"`
	}{promptIDs, ids, text.String()})
}
