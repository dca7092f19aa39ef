package model

import (
	"bytes"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"aigrid/engine/gguf"
	"aigrid/engine/tensor"
)

func tinyModel(t testing.TB, s Spec) *Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := WriteRandom(path, s); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

var tiny = Spec{Arch: "qwen2", Quant: "Q8_0", Dim: 64, Layers: 2, FFN: 128, Heads: 4, KVHeads: 2, Vocab: 300, Context: 64, Seed: 3, LogitScale: 10}

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// A batch of sequences at different lengths gives each the logits it gets
// alone, and prefill in chunks gives the logits of prefill at once.
func TestBatchMatchesSingle(t *testing.T) {
	m := tinyModel(t, tiny)
	pool := tensor.NewPool(2)
	defer pool.Close()
	w := m.NewWorker(pool)
	prompts := [][]int32{{1, 5, 9, 200, 17}, {1, 40}, {1, 7, 7, 7, 7, 7, 7, 7, 250}}

	var want [][]float32
	for _, p := range prompts {
		seq := m.NewSeq()
		out, err := w.Forward([]Step{{Seq: seq, Tokens: p[:len(p)-1], Logits: None}})
		if err != nil || out[0] != nil {
			t.Fatal(err, out)
		}
		out, err = w.Forward([]Step{{Seq: seq, Tokens: p[len(p)-1:]}})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, append([]float32(nil), out[0]...))
		if seq.Len() != len(p) {
			t.Fatalf("Len %d after %d tokens", seq.Len(), len(p))
		}
	}

	seqs := []*Seq{m.NewSeq(), m.NewSeq(), m.NewSeq()}
	var steps []Step
	for i, p := range prompts {
		steps = append(steps, Step{Seq: seqs[i], Tokens: p})
	}
	out, err := w.Forward(steps)
	if err != nil {
		t.Fatal(err)
	}
	for i := range prompts {
		if len(out[i]) != m.Vocab {
			t.Fatalf("step %d: %d logits", i, len(out[i]))
		}
		// Activations are quantized per token, so batching changes nothing
		// but the order of float sums.
		if d := maxDiff(out[i], want[i]); d > 1e-3 {
			t.Errorf("prompt %d: batched logits differ by %g", i, d)
		}
	}

	// All: the last row of a scored prompt is its Last logits.
	seq := m.NewSeq()
	out, err = w.Forward([]Step{{Seq: seq, Tokens: prompts[2], Logits: All}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out[0]) != len(prompts[2])*m.Vocab {
		t.Fatalf("All: %d logits", len(out[0]))
	}
	if d := maxDiff(out[0][(len(prompts[2])-1)*m.Vocab:], want[2]); d > 1e-3 {
		t.Errorf("All: last row differs by %g", d)
	}

	// Truncate and redo the last token: same logits again.
	seq.Truncate(len(prompts[2]) - 1)
	out, err = w.Forward([]Step{{Seq: seq, Tokens: prompts[2][len(prompts[2])-1:]}})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(out[0], want[2]); d > 1e-3 {
		t.Errorf("after Truncate: logits differ by %g", d)
	}
	if got := seq.Tokens(); len(got) != len(prompts[2]) || got[len(got)-1] != 250 {
		t.Errorf("Tokens = %v", got)
	}
	if seq.Bytes() < seq.Len()*m.KVBytesPerToken() {
		t.Errorf("Bytes %d for %d tokens of %d", seq.Bytes(), seq.Len(), m.KVBytesPerToken())
	}
	seq.Free()
	if seq.Len() != 0 || seq.Bytes() != 0 {
		t.Errorf("after Free: Len %d, Bytes %d", seq.Len(), seq.Bytes())
	}
}

func TestForwardRefusesBadBatches(t *testing.T) {
	m := tinyModel(t, tiny)
	other := tinyModel(t, tiny)
	pool := tensor.NewPool(1)
	defer pool.Close()
	w := m.NewWorker(pool)
	seq := m.NewSeq()
	long := make([]int32, m.Context+1)
	for _, c := range []struct {
		name  string
		steps []Step
		want  string
	}{
		{"empty batch", nil, "empty batch"},
		{"no tokens", []Step{{Seq: seq}}, "no tokens"},
		{"bad token", []Step{{Seq: seq, Tokens: []int32{int32(m.Vocab)}}}, "not in the vocabulary"},
		{"negative token", []Step{{Seq: seq, Tokens: []int32{-1}}}, "not in the vocabulary"},
		{"twice", []Step{{Seq: seq, Tokens: []int32{1}}, {Seq: seq, Tokens: []int32{2}}}, "twice"},
		{"other model", []Step{{Seq: other.NewSeq(), Tokens: []int32{1}}}, "another model"},
		{"nil seq", []Step{{Tokens: []int32{1}}}, "another model"},
		{"bad want", []Step{{Seq: seq, Tokens: []int32{1}, Logits: 9}}, "unknown Logits"},
		{"too long", []Step{{Seq: seq, Tokens: long}}, "context length"},
	} {
		_, err := w.Forward(c.steps)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		if seq.Len() != 0 {
			t.Fatalf("%s: refused batch changed the sequence", c.name)
		}
	}
	_, err := w.Forward([]Step{{Seq: seq, Tokens: long}})
	if !errors.Is(err, ErrContext) {
		t.Errorf("too long: %v is not ErrContext", err)
	}
}

func TestEmbed(t *testing.T) {
	m := tinyModel(t, tiny)
	pool := tensor.NewPool(2)
	defer pool.Close()
	w := m.NewWorker(pool)
	a, err := w.Embed([]int32{1, 10, 20, 30})
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != m.Dim {
		t.Fatalf("%d values", len(a))
	}
	if n := dot(a, a); math.Abs(float64(n)-1) > 1e-4 {
		t.Errorf("norm² %g, want 1", n)
	}
	// The mean of the hidden states, computed from Forward's own pieces.
	b, err := w.Embed([]int32{1, 10, 20, 31})
	if err != nil {
		t.Fatal(err)
	}
	if maxDiff(a, b) == 0 {
		t.Error("different texts, same embedding")
	}
	again, _ := w.Embed([]int32{1, 10, 20, 30})
	if maxDiff(a, again) != 0 {
		t.Error("same text, different embedding")
	}
	if _, err := w.Embed(make([]int32, m.Context+1)); !errors.Is(err, ErrContext) {
		t.Errorf("too long: %v", err)
	}
	if _, err := w.Embed(nil); err == nil {
		t.Error("no tokens: no error")
	}
}

// Files that are not models this package runs are refused with a reason.
func TestLoadRefuses(t *testing.T) {
	good := func() *gguf.Writer {
		w, err := RandomWriter(tiny)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	for _, c := range []struct {
		name string
		edit func(w *gguf.Writer)
		want string
	}{
		{"arch", func(w *gguf.Writer) { w.Set("general.architecture", "gpt-neox") }, "not supported"},
		{"heads", func(w *gguf.Writer) { w.Set("qwen2.attention.head_count_kv", uint32(3)) }, "evenly"},
		{"zero dim", func(w *gguf.Writer) { w.Set("qwen2.embedding_length", uint32(0)) }, "out of range"},
		{"shape", func(w *gguf.Writer) { w.Set("qwen2.feed_forward_length", uint32(64)) }, "shape"},
		{"eps", func(w *gguf.Writer) { w.Set("qwen2.attention.layer_norm_rms_epsilon", "x") }, "float32"},
		{"scaling", func(w *gguf.Writer) { w.Set("qwen2.rope.scaling.type", "dynamic") }, "rope scaling"},
		{"missing tensor", func(w *gguf.Writer) { w.Set("qwen2.block_count", uint32(3)) }, "blk.2.attn_norm.weight"},
		{"rope dim", func(w *gguf.Writer) { w.Set("qwen2.rope.dimension_count", uint32(15)) }, "rope dimension"},
	} {
		w := good()
		c.edit(w)
		path := filepath.Join(t.TempDir(), c.name+".gguf")
		if err := w.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		m, err := Load(path)
		if err == nil {
			m.Close()
			t.Errorf("%s: loaded", c.name)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want %q", c.name, err, c.want)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "absent.gguf")); err == nil {
		t.Error("absent file loaded")
	}
}

// A hostile or damaged file is refused or runs; it never panics.
func FuzzNew(f *testing.F) {
	w, err := RandomWriter(Spec{Arch: "qwen3", Quant: "Q8_0", Dim: 32, Layers: 1, FFN: 32, Heads: 2, KVHeads: 1, Vocab: 300, Context: 8, Seed: 1})
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	pool := tensor.NewPool(1)
	f.Fuzz(func(t *testing.T, b []byte) {
		gf, err := gguf.Parse(b)
		if err != nil {
			return
		}
		m, err := New(gf)
		if err != nil {
			return
		}
		w := m.NewWorker(pool)
		seq := m.NewSeq()
		for _, tok := range []int32{1, 2} {
			if _, err := w.Forward([]Step{{Seq: seq, Tokens: []int32{tok % int32(m.Vocab)}}}); err != nil && !errors.Is(err, ErrContext) {
				t.Fatal(err)
			}
		}
	})
}
