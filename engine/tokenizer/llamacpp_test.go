package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"aigrid/engine/gguf"
	"aigrid/internal/shareddata"
)

// The fixtures in testdata/llamacpp-*.json hold llama.cpp's token ids for the
// corpus below. Regenerate them (needs node and the npm registry) with
//
//	go test ./engine/tokenizer -run TestLlamaCpp -update
var update = flag.Bool("update", false, "regenerate testdata/llamacpp-*.json with llama.cpp (needs node)")

// corpus is tokenized without special tokens; specialCorpus with parse_special.
var corpus = []string{
	"Hello, world! How are you doing today?",
	"The quick brown fox jumps over the lazy dog.",
	"I'm sure you'll see they've done it, we'd said. DON'T SHOUT, I'LL go; it's O'Neil's 'quote'.",
	"don't won't can't shouldn't I'd've y'all 'tis rock'n'roll",
	"L'été dernier, nous sommes allés à la plage près de Saint-Malo. Ça coûte 12,50 € !",
	"Habari za asubuhi? Ninafurahi kukuona tena, rafiki yangu. Mvua itanyesha kesho.",
	"Sannu da zuwa! Yaya aiki? Ƙasar Najeriya tana da mutane masu yawa. Ɗan'uwana yana gida.",
	"مرحبا بالعالم! كيف حالك اليوم؟ الطقس جميل ١٢٣٤٥.",
	"你好，世界！今天天气很好。我们去公园散步吧。",
	"नमस्ते दुनिया! आप कैसे हैं? मौसम बहुत अच्छा है।",
	"こんにちは、元気ですか？ 안녕하세요 세계",
	"naïve café résumé Ångström Zürich İstanbul ΑΒΓ αβγ Привет мир",
	"I love 🍕 and 🌍! 👩‍👩‍👧‍👦 family 🏳️‍🌈 flags 🇰🇪🇳🇬 😊😊",
	"func main() {\n\tfmt.Println(\"hi\")\n\tfor i := 0; i < 10; i++ {\n\t\tx += i * 2\n\t}\n}",
	"def f(x):\n    return x**2  # square\n\n\nprint(f(3))",
	"a  b   c    d     e\t\tf \t g",
	"   leading spaces and trailing   ",
	"line one\nline two\n\n\nline five\r\nwindows line\r\n",
	"\n\n",
	"  \n  ",
	" ",
	"1 12 123 1234 12345 123456 3.14159 1,000,000 2024-11-24 0x1F 1e10 ٣٤٥ Ⅻ ½",
	"Mixed123Digits456and789letters and 42nd street, 3rd place.",
	"Wait... what?!?! (really) [yes] {no} <html> --- *** ### @user #tag $100 %50 ^_^ ~~~ |||",
	"pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa !!!!!!!!!!!!!!!! éééééééé",
	"Visit https://example.com/path?q=1&r=2 or mail admin@example.org.",
	"e\u0301 a\u0300 zero\u200bwidth soft\u00adhyphen",
	"a\u00a0b\u2003c\u3000d\u202fe",
	"tab\tvt\vff\fend",
	"𝕳𝖊𝖑𝖑𝖔 𓀀 ꙮ ᚠᛇᚻ",
	"Kiswahili na English mixed: ninapenda coding sana 😊 lakini ni ngumu.",
	"<think>reasoning</think> <tool_call>{\"a\": 1}</tool_call>",
	"<|im_start|>user\nHi<|im_end|>",
	"<start_of_turn>user\n<b>bold</b>\t\t<td><end_of_turn>",
	"<|begin_of_text|><|start_header_id|>user<|end_header_id|>",
	"'s 'S 'Re 'LL ' '' '''",
}

var specialCorpus = []string{
	"<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHabari?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
	"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
	"<bos><start_of_turn>user\nBonjour<end_of_turn>\n<start_of_turn>model\n",
	"text<|endoftext|>more<eos> <unk>",
}

type fixture struct {
	Command string     `json:"command"`
	Engine  string     `json:"engine"`
	Cases   []caseJSON `json:"cases"`
}

type caseJSON struct {
	Text    string  `json:"text"`
	Special bool    `json:"special,omitempty"`
	IDs     []int32 `json:"ids"`
}

func TestLlamaCpp(t *testing.T) {
	for _, v := range vocabs {
		t.Run(v.name, func(t *testing.T) {
			path := filepath.Join("testdata", "llamacpp-"+v.name+".json")
			if *update {
				regenerate(t, v.name, path)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var fx fixture
			if err := json.Unmarshal(b, &fx); err != nil {
				t.Fatal(err)
			}
			tok := tokenizerFor(t, v.name)
			for _, c := range fx.Cases {
				got := tok.Encode(c.Text, false, c.Special)
				if !slices.Equal(got, c.IDs) {
					t.Errorf("%q (special %v):\n got %v\nwant %v\n got %q\nwant %q", c.Text, c.Special,
						got, c.IDs, pieces(tok, got), pieces(tok, c.IDs))
				}
				if back := tok.Decode(got, c.Special); back != c.Text {
					t.Errorf("decode(encode(%q)) = %q", c.Text, back)
				}
			}
		})
	}
}

func pieces(tok *Tokenizer, ids []int32) []string {
	s := make([]string, len(ids))
	for i, id := range ids {
		if id >= 0 && int(id) < tok.Len() {
			s[i] = tok.Token(id)
		}
	}
	return s
}

// tokenizeSpecial is ref.mjs's tokenize command with parse_special on.
const tokenizeSpecial = `import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {readFileSync} from "node:fs";
const [modelPath, file] = process.argv.slice(2);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath});
for (const line of readFileSync(file, "utf8").split("\n")) {
  if (line === "") continue;
  const text = line.replaceAll("\\n", "\n");
  console.log(JSON.stringify({text, ids: Array.from(model.tokenize(text, true))}));
}
process.exit(0);
`

// regenerate writes the vocabulary with a tiny model into a GGUF file, has
// llama.cpp tokenize the corpus, and writes the fixture.
func regenerate(t *testing.T, name, path string) {
	dir := shareddata.Require(t, "vocab")
	setup := filepath.Join(dir, "..", "..", "tools", "llamacpp", "setup.sh")
	out, err := exec.Command("bash", setup).Output()
	if err != nil {
		t.Fatalf("%s: %v", setup, err)
	}
	ref := strings.TrimSpace(string(out))
	var load func(string) (*gguf.Writer, error)
	for _, v := range vocabs {
		if v.name == name {
			load = v.load
		}
	}
	w, err := load(dir)
	if err != nil {
		t.Fatal(err)
	}
	addTinyModel(w, tokenizerFor(t, name).Len())
	tmp := t.TempDir()
	model := filepath.Join(tmp, name+".gguf")
	if err := w.WriteFile(model); err != nil {
		t.Fatal(err)
	}
	run := func(texts []string, special bool, args ...string) []caseJSON {
		lines := filepath.Join(tmp, "lines.txt")
		var b strings.Builder
		for _, s := range texts {
			if strings.Contains(s, `\n`) {
				t.Fatalf("%q: ref.mjs reads \\n as a newline", s)
			}
			b.WriteString(strings.ReplaceAll(s, "\n", `\n`) + "\n")
		}
		if err := os.WriteFile(lines, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("node", append(args, model, lines)...)
		cmd.Dir = ref
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("node %v: %v", args, err)
		}
		var cases []caseJSON
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var c caseJSON
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			c.Special = special
			cases = append(cases, c)
		}
		if len(cases) != len(texts) {
			t.Fatalf("llama.cpp answered %d of %d lines", len(cases), len(texts))
		}
		for i := range cases {
			if cases[i].Text != texts[i] {
				t.Fatalf("line %d came back as %q, not %q", i, cases[i].Text, texts[i])
			}
		}
		return cases
	}
	fx := fixture{
		Command: "go test ./engine/tokenizer -run TestLlamaCpp -update",
		Engine:  "llama.cpp via node-llama-cpp (shared/tools/llamacpp/ref.mjs tokenize)",
	}
	// The script sits beside ref.mjs so that it finds node-llama-cpp.
	script := filepath.Join(ref, "aigrid-tokenize-special.mjs")
	if err := os.WriteFile(script, []byte(tokenizeSpecial), 0o644); err != nil {
		t.Fatal(err)
	}
	fx.Cases = append(run(corpus, false, filepath.Join(ref, "ref.mjs"), "tokenize"),
		run(specialCorpus, true, script)...)
	// One case per line keeps diffs readable.
	var b bytes.Buffer
	head, _ := json.Marshal(fx.Command)
	eng, _ := json.Marshal(fx.Engine)
	b.WriteString("{\"command\": " + string(head) + ",\n \"engine\": " + string(eng) + ",\n \"cases\": [\n")
	for i, c := range fx.Cases {
		line, _ := json.Marshal(c)
		b.Write(line)
		if i < len(fx.Cases)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("]}\n")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
