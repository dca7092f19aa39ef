package tokenizer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"aigrid/engine/gguf"
	"aigrid/internal/shareddata"
)

// The real vocabularies in ../shared/data/vocab, put into GGUF files by the
// project's own writer, with the metadata llama.cpp's converter would write.
var vocabs = []struct {
	name string
	load func(dir string) (*gguf.Writer, error)
}{
	{"qwen3", loadQwen3},
	{"llama3.2", loadLlama32},
	{"gemma2", loadGemma2},
}

// setTokenizer sets the tokenizer keys common to all three.
func setTokenizer(w *gguf.Writer, model, pre string, tokens []string, types []int32) {
	w.Set("general.architecture", "llama")
	w.Set("general.name", "aigrid tokenizer fixture")
	w.Set("tokenizer.ggml.model", model)
	if pre != "" {
		w.Set("tokenizer.ggml.pre", pre)
	}
	w.Set("tokenizer.ggml.tokens", tokens)
	w.Set("tokenizer.ggml.token_type", types)
}

func loadQwen3(dir string) (*gguf.Writer, error) {
	b, err := os.ReadFile(filepath.Join(dir, "qwen3", "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	var tj struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Vocab  map[string]int `json:"vocab"`
			Merges [][2]string    `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(b, &tj); err != nil {
		return nil, err
	}
	n := len(tj.Model.Vocab) + len(tj.AddedTokens)
	tokens, types := make([]string, n), make([]int32, n)
	for s, id := range tj.Model.Vocab {
		tokens[id], types[id] = s, int32(Normal)
	}
	for _, a := range tj.AddedTokens {
		tokens[a.ID], types[a.ID] = a.Content, int32(UserDefined)
		// As llama.cpp's converter: special, or looking special, means control.
		if a.Special || strings.HasPrefix(a.Content, "<|") && strings.HasSuffix(a.Content, "|>") {
			types[a.ID] = int32(Control)
		}
	}
	merges := make([]string, len(tj.Model.Merges))
	for i, m := range tj.Model.Merges {
		merges[i] = m[0] + " " + m[1]
	}
	w := gguf.NewWriter()
	setTokenizer(w, "gpt2", "qwen2", tokens, types)
	w.Set("tokenizer.ggml.merges", merges)
	w.Set("tokenizer.ggml.bos_token_id", uint32(151643))
	w.Set("tokenizer.ggml.eos_token_id", uint32(151645))
	w.Set("tokenizer.ggml.padding_token_id", uint32(151643))
	w.Set("tokenizer.ggml.add_bos_token", false)
	return w, nil
}

// llama32Specials are Llama 3's 256 special tokens after the 128000 of encoder.json.
func llama32Specials() []string {
	s := []string{"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
		"<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
		"<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"}
	for i := 3; len(s) < 256; i++ {
		s = append(s, fmt.Sprintf("<|reserved_special_token_%d|>", i))
	}
	return s
}

func loadLlama32(dir string) (*gguf.Writer, error) {
	b, err := os.ReadFile(filepath.Join(dir, "llama3.2", "encoder.json"))
	if err != nil {
		return nil, err
	}
	var enc map[string]int
	if err := json.Unmarshal(b, &enc); err != nil {
		return nil, err
	}
	specials := llama32Specials()
	tokens, types := make([]string, len(enc)+len(specials)), make([]int32, len(enc)+len(specials))
	for s, id := range enc {
		tokens[id], types[id] = s, int32(Normal)
	}
	for i, s := range specials {
		tokens[len(enc)+i], types[len(enc)+i] = s, int32(Control)
	}
	b, err = os.ReadFile(filepath.Join(dir, "llama3.2", "vocab.bpe"))
	if err != nil {
		return nil, err
	}
	var merges []string
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" && !strings.HasPrefix(line, "#version") {
			merges = append(merges, line)
		}
	}
	w := gguf.NewWriter()
	setTokenizer(w, "gpt2", "llama-bpe", tokens, types)
	w.Set("tokenizer.ggml.merges", merges)
	w.Set("tokenizer.ggml.bos_token_id", uint32(128000))
	w.Set("tokenizer.ggml.eos_token_id", uint32(128009))
	w.Set("tokenizer.ggml.add_bos_token", true)
	return w, nil
}

// loadGemma2 reads the SentencePiece ModelProto: field 1 holds the pieces
// (piece = 1, score = 2, type = 3), field 3 the normalizer spec
// (add_dummy_prefix = 3).
func loadGemma2(dir string) (*gguf.Writer, error) {
	b, err := os.ReadFile(filepath.Join(dir, "gemma2", "tokenizer.model"))
	if err != nil {
		return nil, err
	}
	var tokens []string
	var scores []float32
	var types []int32
	dummyPrefix := true
	err = protoFields(b, func(field int, v uint64, data []byte) error {
		switch field {
		case 1:
			piece, score, typ := "", float32(0), int32(Normal)
			err := protoFields(data, func(f int, v uint64, d []byte) error {
				switch f {
				case 1:
					piece = string(d)
				case 2:
					score = math.Float32frombits(uint32(v))
				case 3:
					typ = int32(v)
				}
				return nil
			})
			tokens, scores, types = append(tokens, piece), append(scores, score), append(types, typ)
			return err
		case 3:
			return protoFields(data, func(f int, v uint64, _ []byte) error {
				if f == 3 {
					dummyPrefix = v != 0
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	w := gguf.NewWriter()
	setTokenizer(w, "llama", "default", tokens, types)
	w.Set("tokenizer.ggml.scores", scores)
	w.Set("tokenizer.ggml.bos_token_id", uint32(2))
	w.Set("tokenizer.ggml.eos_token_id", uint32(1))
	w.Set("tokenizer.ggml.unknown_token_id", uint32(3))
	w.Set("tokenizer.ggml.padding_token_id", uint32(0))
	w.Set("tokenizer.ggml.add_bos_token", true)
	w.Set("tokenizer.ggml.add_eos_token", false)
	w.Set("tokenizer.ggml.add_space_prefix", dummyPrefix)
	return w, nil
}

// protoFields calls fn for each field of a protobuf message: v holds varints and
// fixed32/fixed64 values, data the bytes of length-delimited fields.
func protoFields(b []byte, fn func(field int, v uint64, data []byte) error) error {
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("protobuf: bad tag")
		}
		b = b[n:]
		var v uint64
		var data []byte
		switch tag & 7 {
		case 0:
			v, n = binary.Uvarint(b)
			if n <= 0 {
				return errors.New("protobuf: bad varint")
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return errors.New("protobuf: short fixed64")
			}
			v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return errors.New("protobuf: bad length")
			}
			data, b = b[n:n+int(l)], b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return errors.New("protobuf: short fixed32")
			}
			v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		default:
			return fmt.Errorf("protobuf: wire type %d", tag&7)
		}
		if err := fn(int(tag>>3), v, data); err != nil {
			return err
		}
	}
	return nil
}

// addTinyModel adds a minimal llama model (one layer, width 8, zero weights) so
// that llama.cpp loads the file.
func addTinyModel(w *gguf.Writer, nVocab int) {
	const embd, ff = 8, 16
	w.Set("llama.context_length", uint32(512))
	w.Set("llama.embedding_length", uint32(embd))
	w.Set("llama.block_count", uint32(1))
	w.Set("llama.feed_forward_length", uint32(ff))
	w.Set("llama.attention.head_count", uint32(1))
	w.Set("llama.attention.head_count_kv", uint32(1))
	w.Set("llama.rope.dimension_count", uint32(embd))
	w.Set("llama.attention.layer_norm_rms_epsilon", float32(1e-5))
	w.Set("general.file_type", uint32(0))
	f32 := func(name string, dims ...uint64) {
		n := uint64(4)
		for _, d := range dims {
			n *= d
		}
		w.AddTensor(name, gguf.F32, dims, make([]byte, n))
	}
	f32("token_embd.weight", embd, uint64(nVocab))
	f32("output_norm.weight", embd)
	f32("blk.0.attn_norm.weight", embd)
	f32("blk.0.attn_q.weight", embd, embd)
	f32("blk.0.attn_k.weight", embd, embd)
	f32("blk.0.attn_v.weight", embd, embd)
	f32("blk.0.attn_output.weight", embd, embd)
	f32("blk.0.ffn_norm.weight", embd)
	f32("blk.0.ffn_gate.weight", embd, ff)
	f32("blk.0.ffn_up.weight", embd, ff)
	f32("blk.0.ffn_down.weight", ff, embd)
}

var loaded sync.Map // vocab name → *loadedVocab

type loadedVocab struct {
	once sync.Once
	tok  *Tokenizer
	err  error
}

// tokenizerFor builds the named vocabulary's GGUF in memory and its Tokenizer,
// once per test binary.
func tokenizerFor(t testing.TB, name string) *Tokenizer {
	t.Helper()
	dir := shareddata.Require(t, "vocab")
	v, _ := loaded.LoadOrStore(name, &loadedVocab{})
	lv := v.(*loadedVocab)
	lv.once.Do(func() {
		for _, vc := range vocabs {
			if vc.name != name {
				continue
			}
			w, err := vc.load(dir)
			if err != nil {
				lv.err = err
				return
			}
			var buf bytes.Buffer
			if _, err := w.WriteTo(&buf); err != nil {
				lv.err = err
				return
			}
			f, err := gguf.Parse(buf.Bytes())
			if err != nil {
				lv.err = err
				return
			}
			lv.tok, lv.err = FromGGUF(f)
		}
	})
	if lv.err != nil {
		t.Fatal(lv.err)
	}
	return lv.tok
}
