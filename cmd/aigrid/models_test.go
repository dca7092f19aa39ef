package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"aigrid/engine/model"
	"aigrid/engine/tensor"
)

func TestModelsCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	spec := model.Spec{Arch: "llama", Quant: "Q8_0", Dim: 64, Layers: 2, FFN: 128, Heads: 4, KVHeads: 2,
		Vocab: 300, Context: 128, Seed: 5, LogitScale: 10}
	if err := model.WriteRandom(path, spec); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		return out.String(), err
	}

	out, err := cli("models", "inspect", path, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var info modelInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	if info.Architecture != "llama" || info.Quantization != "Q8_0" || info.ContextLength != 128 ||
		info.Layers != 2 || info.Tokenizer.Model != "llama" || info.Tokenizer.Vocab != 300 ||
		info.Template != "none" || info.TensorTypes["Q8_0"] != 2*7+2 || info.Parameters == 0 {
		t.Errorf("inspect: %+v", info)
	}
	out, err = cli("models", "inspect", path)
	if err != nil || !strings.Contains(out, "Q8_0") || !strings.Contains(out, "2 layers") {
		t.Errorf("inspect as text: %v\n%s", err, out)
	}

	type generated struct {
		PromptIDs []int32 `json:"prompt_ids"`
		IDs       []int32 `json:"ids"`
		Text      string  `json:"text"`
	}
	gen := func(args ...string) generated {
		t.Helper()
		out, err := cli(append([]string{"models", "generate", path, "--json", "--threads", "1"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var g generated
		if err := json.Unmarshal([]byte(out), &g); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return g
	}
	g := gen("--prompt", "the cat", "--max-tokens", "12")
	if g.PromptIDs[0] != 1 || len(g.IDs) == 0 || len(g.IDs) > 12 {
		t.Fatalf("generate: %+v", g)
	}
	// The same greedy continuation as the engine's own loop.
	m, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pool := tensor.NewPool(1)
	defer pool.Close()
	w := m.NewWorker(pool)
	seq := m.NewSeq()
	toks := g.PromptIDs
	var want []int32
	for len(want) < len(g.IDs) {
		logits, err := w.Forward([]model.Step{{Seq: seq, Tokens: toks}})
		if err != nil {
			t.Fatal(err)
		}
		best := int32(0)
		for i, v := range logits[0] {
			if v > logits[0][best] {
				best = int32(i)
			}
		}
		want = append(want, best)
		toks = []int32{best}
	}
	if !slices.Equal(g.IDs, want) {
		t.Errorf("greedy ids %v, engine %v", g.IDs, want)
	}
	// Random weights make invalid UTF-8, which JSON carries as U+FFFD.
	var text string
	raw, _ := json.Marshal(m.Tok.Decode(g.IDs, false))
	json.Unmarshal(raw, &text)
	if g.Text != text {
		t.Errorf("text %q is not the ids' text", g.Text)
	}

	a := gen("--prompt", "the cat", "--temperature", "1.5", "--seed", "9", "--max-tokens", "10")
	b := gen("--prompt", "the cat", "--temperature", "1.5", "--seed", "9", "--max-tokens", "10")
	if !slices.Equal(a.IDs, b.IDs) {
		t.Errorf("same seed, different ids: %v, %v", a.IDs, b.IDs)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"models", "generate", path}, "--prompt"},
		{[]string{"models", "generate", path, "--prompt", "x", "--temperature", "-1"}, "temperature"},
		{[]string{"models", "generate", path, "--prompt", strings.Repeat("x ", 200)}, "tokens"},
		{[]string{"models", "inspect", filepath.Join(t.TempDir(), "absent.gguf")}, "absent.gguf"},
		{[]string{"models", "frob"}, "unknown models command"},
		{[]string{"models"}, "usage"},
	} {
		if _, err := cli(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
}
