package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"aigrid/engine/gguf"
)

// Vocabulary is the tokenizer metadata of a GGUF file (tokenizer.ggml.*), for
// the files that WriteRandom makes.
type Vocabulary struct {
	Model    string // "gpt2" (byte-level BPE) or "llama" (SentencePiece)
	Pre      string // pre-tokenizer of gpt2 vocabularies
	Tokens   []string
	Types    []int32
	Scores   []float32 // llama only
	Merges   []string  // gpt2 only
	BOS, EOS int32
	AddBOS   bool
	Template string // tokenizer.chat_template, if any
}

// Token types as llama.cpp numbers them.
const (
	typeNormal  = 1
	typeControl = 3
	typeUser    = 4
	typeUnused  = 5
	typeByte    = 6
)

// LoadVocabulary reads one of the real vocabularies kept as test data (see
// ../shared/data/vocab): "qwen3" (Qwen2.5 and Qwen3, with Qwen3's chat template)
// or "llama3.2", from dir, the folder that holds them.
func LoadVocabulary(dir, name string) (*Vocabulary, error) {
	switch name {
	case "qwen3":
		return loadQwen(filepath.Join(dir, "qwen3"))
	case "llama3.2":
		return loadLlama3(filepath.Join(dir, "llama3.2"))
	}
	return nil, fmt.Errorf("model: no vocabulary %q (qwen3, llama3.2)", name)
}

func loadQwen(dir string) (*Vocabulary, error) {
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
	var cfg struct {
		ChatTemplate string `json:"chat_template"`
	}
	if err := readJSON(filepath.Join(dir, "tokenizer.json"), &tj); err != nil {
		return nil, err
	}
	if err := readJSON(filepath.Join(dir, "tokenizer_config.json"), &cfg); err != nil {
		return nil, err
	}
	n := len(tj.Model.Vocab) + len(tj.AddedTokens)
	v := &Vocabulary{Model: "gpt2", Pre: "qwen2", Tokens: make([]string, n), Types: make([]int32, n),
		BOS: 151643, EOS: 151645, Template: cfg.ChatTemplate}
	for s, id := range tj.Model.Vocab {
		if id < 0 || id >= n {
			return nil, fmt.Errorf("model: qwen vocabulary: token id %d out of range", id)
		}
		v.Tokens[id], v.Types[id] = s, typeNormal
	}
	for _, a := range tj.AddedTokens {
		if a.ID < 0 || a.ID >= n {
			return nil, fmt.Errorf("model: qwen vocabulary: added token id %d out of range", a.ID)
		}
		// As llama.cpp's converter: special, or looking special, is control.
		v.Tokens[a.ID], v.Types[a.ID] = a.Content, typeUser
		if a.Special || strings.HasPrefix(a.Content, "<|") && strings.HasSuffix(a.Content, "|>") {
			v.Types[a.ID] = typeControl
		}
	}
	v.Merges = make([]string, len(tj.Model.Merges))
	for i, m := range tj.Model.Merges {
		v.Merges[i] = m[0] + " " + m[1]
	}
	return v, nil
}

func loadLlama3(dir string) (*Vocabulary, error) {
	var enc map[string]int
	if err := readJSON(filepath.Join(dir, "encoder.json"), &enc); err != nil {
		return nil, err
	}
	// Llama 3's 256 special tokens follow the 128000 of encoder.json.
	specials := []string{"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
		"<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
		"<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"}
	for i := 3; len(specials) < 256; i++ {
		specials = append(specials, fmt.Sprintf("<|reserved_special_token_%d|>", i))
	}
	n := len(enc) + len(specials)
	v := &Vocabulary{Model: "gpt2", Pre: "llama-bpe", Tokens: make([]string, n), Types: make([]int32, n),
		BOS: int32(len(enc)), EOS: int32(len(enc)) + 9, AddBOS: true}
	for s, id := range enc {
		if id < 0 || id >= len(enc) {
			return nil, fmt.Errorf("model: llama3 vocabulary: token id %d out of range", id)
		}
		v.Tokens[id], v.Types[id] = s, typeNormal
	}
	for i, s := range specials {
		v.Tokens[len(enc)+i], v.Types[len(enc)+i] = s, typeControl
	}
	b, err := os.ReadFile(filepath.Join(dir, "vocab.bpe"))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" && !strings.HasPrefix(line, "#version") {
			v.Merges = append(v.Merges, line)
		}
	}
	return v, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// SyntheticVocabulary is a SentencePiece vocabulary of n tokens (at least 300):
// <unk>, <s>, </s>, the 256 byte tokens, then short pieces of letters, so that
// small test models load in llama.cpp as well as here.
func SyntheticVocabulary(n int) *Vocabulary {
	n = max(n, 300)
	v := &Vocabulary{Model: "llama", BOS: 1, EOS: 2, AddBOS: true}
	add := func(s string, typ int32, score float32) {
		v.Tokens = append(v.Tokens, s)
		v.Types = append(v.Types, typ)
		v.Scores = append(v.Scores, score)
	}
	add("<unk>", 2, 0)
	add("<s>", typeControl, 0)
	add("</s>", typeControl, 0)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), typeByte, 0)
	}
	const letters = "etaoinshrdlucmfwypvbgkjqxz"
	for i := 0; len(v.Tokens) < n; i++ {
		// ▁x, x, then two-letter pieces, in decreasing score.
		var s string
		switch {
		case i < len(letters):
			s = "▁" + letters[i:i+1]
		case i < 2*len(letters):
			s = letters[i-len(letters) : i-len(letters)+1]
		default:
			j := i - 2*len(letters)
			s = string(letters[j/len(letters)%len(letters)]) + string(letters[j%len(letters)])
			if j >= len(letters)*len(letters) {
				s = fmt.Sprintf("▁%s%d", s, j/(len(letters)*len(letters)))
			}
		}
		add(s, typeNormal, -float32(i))
	}
	return v
}

// set writes the vocabulary into w, padded with unused tokens to n.
func (v *Vocabulary) set(w *gguf.Writer, n int) {
	tokens, types := v.Tokens, v.Types
	if len(tokens) < n {
		tokens = append(tokens[:len(tokens):len(tokens)], make([]string, n-len(tokens))...)
		types = append(types[:len(types):len(types)], make([]int32, n-len(types))...)
		for i := len(v.Tokens); i < n; i++ {
			tokens[i], types[i] = fmt.Sprintf("[PAD%d]", i), typeUnused
		}
	}
	w.Set("tokenizer.ggml.model", v.Model)
	if v.Pre != "" {
		w.Set("tokenizer.ggml.pre", v.Pre)
	}
	w.Set("tokenizer.ggml.tokens", tokens)
	w.Set("tokenizer.ggml.token_type", types)
	if v.Scores != nil {
		scores := v.Scores
		if len(scores) < n {
			scores = append(scores[:len(scores):len(scores)], make([]float32, n-len(scores))...)
		}
		w.Set("tokenizer.ggml.scores", scores)
	}
	if v.Merges != nil {
		w.Set("tokenizer.ggml.merges", v.Merges)
	}
	w.Set("tokenizer.ggml.bos_token_id", uint32(v.BOS))
	w.Set("tokenizer.ggml.eos_token_id", uint32(v.EOS))
	w.Set("tokenizer.ggml.add_bos_token", v.AddBOS)
	if v.Template != "" {
		w.Set("tokenizer.chat_template", v.Template)
	}
}
