// Command engine measures aigrid's inference engine on a GGUF file: prompt
// processing and generation speed, single stream and N streams decoding
// together, printed as one JSON line of the same shape as llama.cpp's
// (../shared/tools/llamacpp/ref.mjs bench), so that compare.sh can divide one
// by the other.
//
//	go run ./bench/engine -model FILE [-prompt 128] [-gen 64] [-threads 2] [-streams 8] [-temperature 1]
//	go run ./bench/engine -write-model DIR   # Qwen2.5-0.5B-shaped random models, Q8_0 and Q4_K_M
//
// Build with GOEXPERIMENT=simd for the SIMD kernels.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"log"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"aigrid/engine/model"
	"aigrid/engine/sample"
	"aigrid/engine/tensor"
	"aigrid/internal/shareddata"
)

func main() {
	var (
		path     = flag.String("model", "", "GGUF file to measure")
		nPrompt  = flag.Int("prompt", 128, "prompt tokens")
		nGen     = flag.Int("gen", 64, "generated tokens")
		threads  = flag.Int("threads", 2, "compute threads")
		streams  = flag.Int("streams", 1, "sequences decoding together for aggregate_gen_tps")
		temp     = flag.Float64("temperature", 0, "sample each token at this temperature with the grid's sampler (0: greedy, as the llama.cpp comparison)")
		writeDir = flag.String("write-model", "", "write Qwen2.5-0.5B-shaped random models (Q8_0, Q4_K_M) into this folder and exit")
		cpuProf  = flag.String("cpuprofile", "", "write a CPU profile of the measured run to this file")
	)
	flag.Parse()
	log.SetFlags(0)
	if *writeDir != "" {
		if err := writeModels(*writeDir); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *path == "" || *nPrompt < 1 || *nGen < 1 || *streams < 1 || *temp < 0 || *temp > 2 {
		flag.Usage()
		os.Exit(2)
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	res, err := measure(*path, *nPrompt, *nGen, *threads, *streams, float32(*temp))
	if err != nil {
		log.Fatal(err)
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

type result struct {
	Engine       string  `json:"engine"`
	Model        string  `json:"model"`
	Threads      int     `json:"threads"`
	PromptTokens int     `json:"prompt_tokens"`
	PromptTPS    float64 `json:"prompt_tps"`
	GenTokens    int     `json:"gen_tokens"`
	GenTPS       float64 `json:"gen_tps"`
	Streams      int     `json:"streams"`
	Temperature  float32 `json:"temperature"`
	AggregateTPS float64 `json:"aggregate_gen_tps"`
	// Memory: the resident set after the run, the file, and the KV cache held.
	RSSMiB  float64 `json:"rss_mib"`
	FileMiB float64 `json:"file_mib"`
	KVMiB   float64 `json:"kv_mib"`
}

// promptTokens are ref.mjs's: 300 + (i·7919 mod 20000).
func promptTokens(n, vocab int) []int32 {
	toks := make([]int32, n)
	for i := range toks {
		toks[i] = int32((300 + i*7919%20000) % vocab)
	}
	return toks
}

func measure(path string, nPrompt, nGen, threads, streams int, temperature float32) (*result, error) {
	m, err := model.Load(path)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	pool := tensor.NewPool(threads)
	defer pool.Close()
	w := m.NewWorker(pool)
	prompt := promptTokens(nPrompt, m.Vocab)
	res := &result{Engine: "aigrid", Model: filepath.Base(path), Threads: threads,
		PromptTokens: nPrompt, GenTokens: nGen, Streams: streams, Temperature: temperature}
	choose, err := newChooser(temperature, streams)
	if err != nil {
		return nil, err
	}

	// Warm the mapping and the worker's buffers, as llama.cpp's load does.
	warm := m.NewSeq()
	if _, err := w.Forward([]model.Step{{Seq: warm, Tokens: prompt[:min(8, nPrompt)]}}); err != nil {
		return nil, err
	}
	warm.Free()

	seq := m.NewSeq()
	t := time.Now()
	if _, err := w.Forward([]model.Step{{Seq: seq, Tokens: prompt}}); err != nil {
		return nil, err
	}
	res.PromptTPS = round(float64(nPrompt) / time.Since(t).Seconds())

	// Generation, as ref.mjs: the first prompt token again, then greedy.
	next := prompt[0]
	t = time.Now()
	for range nGen {
		out, err := w.Forward([]model.Step{{Seq: seq, Tokens: []int32{next}}})
		if err != nil {
			return nil, err
		}
		next = choose(0, out[0])
	}
	res.GenTPS = round(float64(nGen) / time.Since(t).Seconds())
	kv := seq.Bytes()
	seq.Free()

	res.AggregateTPS = res.GenTPS
	if streams > 1 {
		// Each stream has its own prompt (rotated), prefilled one after the
		// other as a scheduler would chunk them, then all decode in one batch
		// per step.
		seqs := make([]*model.Seq, streams)
		steps := make([]model.Step, streams)
		nexts := make([]int32, streams)
		for i := range seqs {
			seqs[i] = m.NewSeq()
			p := append(append([]int32(nil), prompt[i%nPrompt:]...), prompt[:i%nPrompt]...)
			out, err := w.Forward([]model.Step{{Seq: seqs[i], Tokens: p}})
			if err != nil {
				return nil, err
			}
			nexts[i] = choose(i, out[0])
			steps[i] = model.Step{Seq: seqs[i]}
		}
		t = time.Now()
		for range nGen {
			for i := range steps {
				steps[i].Tokens = nexts[i : i+1]
			}
			outs, err := w.Forward(steps)
			if err != nil {
				return nil, err
			}
			for i := range nexts {
				nexts[i] = choose(i, outs[i])
			}
		}
		res.AggregateTPS = round(float64(streams*nGen) / time.Since(t).Seconds())
		kv = 0
		for _, s := range seqs {
			kv += s.Bytes()
		}
	}
	res.KVMiB = round(float64(kv) / (1 << 20))
	if st, err := os.Stat(path); err == nil {
		res.FileMiB = round(float64(st.Size()) / (1 << 20))
	}
	res.RSSMiB = round(float64(rss()) / (1 << 20))
	return res, nil
}

// newChooser picks each stream's next token: the most likely one, or at a
// temperature, drawn by the sampler the grid's scheduler uses, which then
// counts in the speed as it does in a served request.
func newChooser(temperature float32, streams int) (func(stream int, logits []float32) int32, error) {
	if temperature == 0 {
		return func(_ int, logits []float32) int32 { return argmax(logits) }, nil
	}
	samplers := make([]*sample.Sampler, streams)
	for i := range samplers {
		var err error
		if samplers[i], err = sample.New(sample.Params{Temperature: temperature, Seed: uint64(i)}); err != nil {
			return nil, err
		}
	}
	return func(stream int, logits []float32) int32 { return samplers[stream].Sample(logits).ID }, nil
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

func round(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 2, 64), 64)
	return v
}

// rss is the resident set size from /proc/self/status, 0 where there is none.
func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// writeModels writes Qwen2.5-0.5B's shapes (tied embeddings, rope base 10⁶)
// with random weights, with the real Qwen vocabulary when the shared data is
// there (the weights do not care, but the tokenizer is then the real one).
func writeModels(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var vocab *model.Vocabulary
	if d := shareddata.Dir("vocab"); d != "" {
		v, err := model.LoadVocabulary(d, "qwen3")
		if err != nil {
			return err
		}
		vocab = v
	}
	for _, q := range []string{"Q8_0", "Q4_K_M"} {
		spec := model.Spec{Arch: "qwen2", Quant: q, Dim: 896, Layers: 24, FFN: 4864, Heads: 14, KVHeads: 2,
			Vocab: 151936, Context: 32768, Tied: true, RopeBase: 1e6, Seed: 1, Vocabulary: vocab}
		path := filepath.Join(dir, "qwen2.5-0.5b-random-"+strings.ToLower(q)+".gguf")
		t := time.Now()
		if err := model.WriteRandom(path, spec); err != nil {
			return err
		}
		log.Printf("wrote %s in %v", path, time.Since(t).Round(time.Second))
	}
	return nil
}
