package chat

import (
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aigrid/internal/shareddata"
)

// testdata/qwen3.json holds the real Qwen3 template (../shared/data/vocab)
// rendered by Jinja itself, as Hugging Face's transformers sets it up, for the
// conversations below. Regenerate it (needs python3 with jinja2) with
//
//	go test ./engine/chat -run TestQwen3Template -update
var update = flag.Bool("update", false, "regenerate testdata/qwen3.json with python3 and jinja2")

type qwenCase struct {
	Messages   []Message `json:"messages"`
	Generation bool      `json:"add_generation_prompt"`
	NoThinking bool      `json:"no_thinking,omitempty"`
	Want       string    `json:"want"`
}

var qwenConversations = []qwenCase{
	{Messages: []Message{{Role: "user", Content: "Habari?"}}, Generation: true},
	{Messages: []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi"}}, Generation: true},
	{Messages: []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "2+2?"},
		{Role: "assistant", Content: "<think>\nadd them\n</think>\n\n4"}, {Role: "user", Content: "and 3+3?"}}, Generation: true},
	{Messages: []Message{{Role: "user", Content: "2+2?"}, {Role: "assistant", Content: "4", Reasoning: "\nsimple\n"}}},
	{Messages: []Message{{Role: "user", Content: "weather?"}, {Role: "assistant", Content: "checking"},
		{Role: "tool", Content: "sunny"}, {Role: "tool", Content: "25C"}}, Generation: true},
	{Messages: []Message{{Role: "user", Content: "quick"}}, Generation: true, NoThinking: true},
	{Messages: []Message{{Role: "user", Content: "a"}, {Role: "system", Content: "late system"}, {Role: "user", Content: "b"}}, Generation: true},
	{Messages: []Message{{Role: "user", Content: "x"}, {Role: "assistant", Content: "<think>t1</think>y"},
		{Role: "user", Content: "<tool_response>\nr\n</tool_response>"}, {Role: "assistant", Content: "<think>t2</think>z"}}},
}

const renderScript = `import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
tmpl = env.from_string(json.load(open(sys.argv[1]))["chat_template"])
cases = json.load(sys.stdin)
for c in cases:
    msgs = []
    for m in c["messages"]:
        d = {"role": m["Role"], "content": m["Content"]}
        if m.get("Reasoning"):
            d["reasoning_content"] = m["Reasoning"]
        msgs.append(d)
    kw = {"enable_thinking": False} if c.get("no_thinking") else {}
    c["want"] = tmpl.render(messages=msgs, add_generation_prompt=c["add_generation_prompt"], **kw)
json.dump(cases, sys.stdout, indent=1, ensure_ascii=False)
`

func qwenTemplate(t *testing.T) string {
	dir := shareddata.Require(t, "vocab")
	b, err := os.ReadFile(filepath.Join(dir, "qwen3", "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ChatTemplate string `json:"chat_template"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.ChatTemplate
}

func TestQwen3Template(t *testing.T) {
	tmpl := qwenTemplate(t)
	path := filepath.Join("testdata", "qwen3.json")
	if *update {
		in, _ := json.Marshal(qwenConversations)
		cmd := exec.Command("python3", "-c", renderScript,
			filepath.Join(shareddata.Dir("vocab"), "qwen3", "tokenizer_config.json"))
		cmd.Stdin = strings.NewReader(string(in))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []qwenCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) != len(qwenConversations) {
		t.Fatalf("fixture has %d cases, the test %d: regenerate with -update", len(cases), len(qwenConversations))
	}
	tp := Parse(tmpl)
	if tp.Family != Qwen3 {
		t.Fatalf("family %q, want qwen3", tp.Family)
	}
	for i, c := range cases {
		got, err := tp.Render(c.Messages, Options{AddGenerationPrompt: c.Generation, NoThinking: c.NoThinking})
		if err != nil {
			t.Fatal(err)
		}
		if got != c.Want {
			t.Errorf("case %d:\n got %q\nwant %q", i, got, c.Want)
		}
	}
}

func TestChatML(t *testing.T) {
	// Templates in the style of Qwen2.5 and SmolLM2: a default system prompt
	// written in the template.
	qwen25 := `{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}{%- endif %}`
	tp := Parse(qwen25)
	if tp.Family != ChatML || tp.DefaultSystem != "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." {
		t.Fatalf("parsed %+v", tp)
	}
	got, _ := tp.Render([]Message{{Role: "user", Content: "Hi"}}, Options{AddGenerationPrompt: true})
	want := "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	got, _ = tp.Render([]Message{{Role: "system", Content: "S"}, {Role: "user", Content: "Hi"}}, Options{})
	if want := "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	plain := Parse(`{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}`)
	if plain.Family != ChatML || plain.DefaultSystem != "" {
		t.Errorf("plain ChatML parsed as %+v", plain)
	}
}

func TestLlama3(t *testing.T) {
	tp := Parse(`{{- bos_token }}{%- if custom_tools is defined %}...{%- endif %}{{- "Cutting Knowledge Date: December 2023\n" }}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}`)
	if tp.Family != Llama3 {
		t.Fatalf("family %q", tp.Family)
	}
	now := time.Date(2025, 3, 7, 0, 0, 0, 0, time.UTC)
	got, err := tp.Render([]Message{{Role: "system", Content: " Be kind. "}, {Role: "user", Content: "Hello\n"}},
		Options{AddGenerationPrompt: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	want := "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 07 Mar 2025\n\nBe kind.<|eot_id|>" +
		"<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	// Llama 3.0: no preamble.
	tp = Parse(`{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}`)
	got, _ = tp.Render([]Message{{Role: "user", Content: "Hi"}}, Options{})
	if want := "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"; got != want {
		t.Errorf("Llama 3.0: got %q", got)
	}
}

func TestFallbackAndErrors(t *testing.T) {
	for _, tmpl := range []string{"", "{{ messages }}<start_of_turn>"} {
		tp := Parse(tmpl)
		if tp.Family != Fallback {
			t.Errorf("%q: family %q", tmpl, tp.Family)
		}
		got, _ := tp.Render([]Message{{Role: "user", Content: "Hi"}}, Options{AddGenerationPrompt: true})
		if want := "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"; got != want {
			t.Errorf("fallback: got %q", got)
		}
	}
	tp := Parse("<|im_start|>")
	if _, err := tp.Render(nil, Options{}); err == nil {
		t.Error("no messages: no error")
	}
	if _, err := tp.Render([]Message{{Role: "wizard", Content: "x"}}, Options{}); err == nil || !strings.Contains(err.Error(), "wizard") {
		t.Errorf("bad role: %v", err)
	}
}
