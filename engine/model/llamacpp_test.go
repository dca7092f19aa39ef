package model

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"aigrid/engine/tensor"
)

// testdata/llamacpp-forward.json holds llama.cpp's next-token distributions
// (the top 10 of the softmax of its logits, at every position) and greedy
// continuations for the random models below. Regenerate it (needs node and the npm registry) with
//
//	go test ./engine/model -run TestLlamaCpp -update
var update = flag.Bool("update", false, "regenerate testdata/llamacpp-forward.json with llama.cpp (needs node)")

const fixturePath = "testdata/llamacpp-forward.json"

type refCase struct {
	Name   string         `json:"name"`
	SHA256 string         `json:"sha256"` // of the model file, to notice a changed writer
	Tokens []int32        `json:"tokens"`
	Probs  [][][2]float64 `json:"probs"` // per position: [id, probability], best first
	Greedy []int32        `json:"greedy"`
}

type refFixture struct {
	Command string    `json:"command"`
	Engine  string    `json:"engine"`
	Cases   []refCase `json:"cases"`
}

// refSpecs are the models compared: every architecture in every file type,
// plus tied embeddings and YaRN scaling. K-quants need rows of 256.
func refSpecs() map[string]Spec {
	specs := map[string]Spec{}
	for _, arch := range []string{"llama", "qwen2", "qwen3"} {
		for _, q := range []string{"F32", "F16", "Q8_0", "Q4_0", "Q4_K_M"} {
			s := Spec{Arch: arch, Quant: q, Dim: 64, Layers: 2, FFN: 128, Heads: 4, KVHeads: 2, Vocab: 320, Seed: 7, LogitScale: 10}
			if q == "Q4_K_M" {
				s.Dim, s.FFN, s.Layers = 256, 512, 3
			}
			specs[arch+"-"+q] = s
		}
	}
	specs["llama-tied-Q8_0"] = Spec{Arch: "llama", Quant: "Q8_0", Dim: 128, Layers: 2, FFN: 256, Heads: 2, KVHeads: 1, Vocab: 400, Tied: true, Seed: 11, LogitScale: 10}
	specs["qwen2-yarn-F32"] = Spec{Arch: "qwen2", Quant: "F32", Dim: 64, Layers: 2, FFN: 128, Heads: 4, KVHeads: 4, Vocab: 320, Seed: 13, LogitScale: 10,
		RopeScaling: "yarn", RopeFactor: 4, RopeOrigCtx: 16}
	specs["qwen3-headdim-F16"] = Spec{Arch: "qwen3", Quant: "F16", Dim: 64, Layers: 2, FFN: 128, Heads: 4, KVHeads: 2, HeadDim: 32, Vocab: 320, Seed: 17, LogitScale: 10}
	return specs
}

// refTokens is the prompt: BOS then a fixed pseudo-random walk over the vocabulary.
func refTokens(vocab int) []int32 {
	toks := []int32{1}
	x := uint32(12345)
	for len(toks) < 32 {
		x = x*1103515245 + 12345
		toks = append(toks, int32(3+x>>8%uint32(vocab-3)))
	}
	return toks
}

func writeSpec(t testing.TB, dir, name string, s Spec) (string, string) {
	path := filepath.Join(dir, name+".gguf")
	if err := WriteRandom(path, s); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return path, hex.EncodeToString(sum[:])
}

func TestLlamaCpp(t *testing.T) {
	if *update {
		regenerate(t)
	}
	b, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	var fx refFixture
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	specs := refSpecs()
	if len(fx.Cases) != len(specs) {
		t.Errorf("fixture has %d cases, the test %d: regenerate with -update", len(fx.Cases), len(specs))
	}
	dir := t.TempDir()
	for _, c := range fx.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			pool := tensor.NewPool(1)
			defer pool.Close()
			s, ok := specs[c.Name]
			if !ok {
				t.Fatalf("no spec %q: regenerate with -update", c.Name)
			}
			path, sum := writeSpec(t, dir, c.Name, s)
			if sum != c.SHA256 {
				t.Fatalf("the model file changed (sha256 %s, fixture %s): regenerate with -update", sum, c.SHA256)
			}
			m, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			w := m.NewWorker(pool)
			seq := m.NewSeq()
			logits, err := w.Forward([]Step{{Seq: seq, Tokens: c.Tokens, Logits: All}})
			if err != nil {
				t.Fatal(err)
			}
			worst, sumKL := 0.0, 0.0
			for pos, top := range c.Probs {
				kl := topKL(top, logits[0][pos*m.Vocab:(pos+1)*m.Vocab])
				worst = max(worst, kl)
				sumKL += kl
			}
			mean := sumKL / float64(len(c.Probs))
			t.Logf("KL divergence from llama.cpp: mean %.2g, worst %.2g over %d positions", mean, worst, len(c.Probs))
			if mean > 2e-3 || worst > 1e-2 {
				t.Errorf("KL divergence from llama.cpp too large: mean %.3g, worst %.3g", mean, worst)
			}
			// Greedy continuation, one token at a time through the cache. The
			// two engines round differently, so where llama.cpp's choice is
			// within a hair of ours the paths may part: compare up to there.
			last := logits[0][(len(c.Tokens)-1)*m.Vocab:]
			for i, want := range c.Greedy {
				got := argmax(last)
				if got != want {
					gap := last[got] - last[want]
					t.Logf("greedy: agree on %d of %d tokens, then %d where llama.cpp chose %d (logit gap %.3g)", i, len(c.Greedy), got, want, gap)
					if gap > 0.05 {
						t.Errorf("greedy continuation parts from llama.cpp's at token %d by a logit gap of %.3g", i, gap)
					}
					break
				}
				out, err := w.Forward([]Step{{Seq: seq, Tokens: []int32{got}}})
				if err != nil {
					t.Fatal(err)
				}
				last = out[0]
			}
		})
	}
}

// topKL is KL(p‖q) of llama.cpp's distribution p, known on its top tokens, and
// ours q (from logits), with the rest of each distribution as one more outcome.
func topKL(top [][2]float64, logits []float32) float64 {
	q := probs(logits)
	kl, restP, restQ := 0.0, 1.0, 1.0
	for _, e := range top {
		p, qi := e[1], q[int(e[0])]
		restP -= p
		restQ -= qi
		if p > 0 {
			kl += p * math.Log(p/max(qi, 1e-30))
		}
	}
	if restP > 1e-9 {
		kl += restP * math.Log(restP/max(restQ, 1e-30))
	}
	return kl
}

func probs(logits []float32) []float64 {
	mx := math.Inf(-1)
	for _, l := range logits {
		mx = max(mx, float64(l))
	}
	p := make([]float64, len(logits))
	sum := 0.0
	for i, l := range logits {
		p[i] = math.Exp(float64(l) - mx)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

// probsScript is ref.mjs's probs command on raw logits: ref.mjs's probabilities
// come after node-llama-cpp's default top-k 40 and top-p 0.95, which renormalise.
const probsScript = `import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {readFileSync} from "node:fs";
const [modelPath, file, top] = process.argv.slice(2);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath});
const ctx = await model.createContext({contextSize: 2048, batchSize: 512, threads: 2});
const seq = ctx.getSequence();
const toks = JSON.parse(readFileSync(file, "utf8"));
const res = await seq.controlledEvaluate(toks.map((t) => [t, {generateNext: {logits: true}}]));
res.forEach((r, i) => {
  const l = [...r.next.logits.entries()];
  const mx = Math.max(...l.map(([, x]) => x));
  let sum = 0;
  for (const [, x] of l) sum += Math.exp(x - mx);
  const best = l.sort((x, y) => y[1] - x[1]).slice(0, +top);
  console.log(JSON.stringify({pos: i, top: best.map(([id, x]) => [id, +(Math.exp(x - mx) / sum).toPrecision(6)])}));
});
process.exit(0);
`

// regenerate writes every model, has llama.cpp evaluate it (probsScript, and
// ref.mjs greedy), and writes the fixture.
func regenerate(t *testing.T) {
	setup := filepath.Join("..", "..", "..", "shared", "tools", "llamacpp", "setup.sh")
	out, err := exec.Command("bash", setup).Output()
	if err != nil {
		t.Fatalf("%s: %v", setup, err)
	}
	ref := strings.TrimSpace(string(out))
	// The script sits beside ref.mjs so that it finds node-llama-cpp.
	script := filepath.Join(ref, "aigrid-probs.mjs")
	if err := os.WriteFile(script, []byte(probsScript), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fx := refFixture{
		Command: "go test ./engine/model -run TestLlamaCpp -update",
		Engine:  "llama.cpp via node-llama-cpp (softmax of its logits; shared/tools/llamacpp/ref.mjs greedy)",
	}
	specs := refSpecs()
	names := make([]string, 0, len(specs))
	for name := range specs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		s := specs[name]
		path, sum := writeSpec(t, dir, name, s)
		c := refCase{Name: name, SHA256: sum, Tokens: refTokens(s.Vocab)}
		toks := filepath.Join(dir, "tokens.json")
		tb, _ := json.Marshal(c.Tokens)
		if err := os.WriteFile(toks, tb, 0o644); err != nil {
			t.Fatal(err)
		}
		node := func(args ...string) [][]byte {
			cmd := exec.Command("node", args...)
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: node %v: %v", name, args, err)
			}
			var lines [][]byte
			sc := bufio.NewScanner(bytes.NewReader(out))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				lines = append(lines, append([]byte(nil), sc.Bytes()...))
			}
			return lines
		}
		for _, line := range node(script, path, toks, "10") {
			var r struct {
				Pos int          `json:"pos"`
				Top [][2]float64 `json:"top"`
			}
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatal(err)
			}
			if r.Pos != len(c.Probs) {
				t.Fatalf("%s: position %d out of order", name, r.Pos)
			}
			c.Probs = append(c.Probs, r.Top)
		}
		if len(c.Probs) != len(c.Tokens) {
			t.Fatalf("%s: llama.cpp gave %d distributions for %d tokens", name, len(c.Probs), len(c.Tokens))
		}
		lines := node(filepath.Join(ref, "ref.mjs"), "greedy", path, toks, "16")
		var g struct {
			IDs []int32 `json:"ids"`
		}
		if len(lines) != 1 || json.Unmarshal(lines[0], &g) != nil {
			t.Fatalf("%s: greedy answered %q", name, lines)
		}
		c.Greedy = g.IDs
		fx.Cases = append(fx.Cases, c)
	}
	// One case per line keeps diffs readable.
	var b bytes.Buffer
	head, _ := json.Marshal(fx.Command)
	eng, _ := json.Marshal(fx.Engine)
	b.WriteString("{\"command\": " + string(head) + ",\n \"engine\": " + string(eng) + ",\n \"cases\": [\n")
	for i, c := range fx.Cases {
		line, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		if i < len(fx.Cases)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("]}\n")
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fixturePath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
