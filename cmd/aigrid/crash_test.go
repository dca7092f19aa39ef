package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aigrid/internal/serveproc"
	"aigrid/internal/upstreamtest"
)

// TestCrashLosesNothing runs a real aigrid binary under concurrent streaming
// and non-streaming load, kills it with SIGKILL, restarts it on the same
// data, and checks the ledger: every response a client received complete is
// in the usage exactly once with the tokens the client saw, nothing counts
// twice, the ledger balances and the balance is the opening balance less
// the sum of the charges.
func TestCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a server: not in -short")
	}
	dir := t.TempDir()
	bin, err := serveproc.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	up := upstreamtest.New(t, "", map[string]upstreamtest.Behaviour{
		"small-chat": {Reply: "one two three four five six seven eight", ChunkDelay: 2 * time.Millisecond},
	})
	const adminKey = "sk-admin-crash-test-0001"
	const key = "sk-clinic-crash-01"
	cfg := filepath.Join(dir, "grid.yaml")
	os.WriteFile(cfg, []byte(`admin_keys: [`+adminKey+`]
currency: KES
tariffs:
  - name: public
    blocks:
      - {up_to: 500, input: 0, output: 0}
      - {input: 2000, output: 6000}
providers:
  - name: up1
    base_url: `+up.URL+`
    offers:
      - {model: small-chat, serves: [chat], price: {input: 100, output: 300}}
tenants:
  - name: clinic
    keys: [`+key+`]
    tariff: public
    account: {type: prepaid, balance: 100000}
`), 0o600)
	data := filepath.Join(dir, "data")

	srv := startBinary(t, bin, data, cfg)
	// Load until the kill: record what each client received complete.
	type seen struct{ prompt, completion int }
	var mu sync.Mutex
	complete := map[string]seen{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, p, c, ok := crashCall(client, srv.URL, key, fmt.Sprintf("worker %d call %d", w, i), (w+i)%2 == 0)
				if ok {
					mu.Lock()
					complete[id] = seen{p, c}
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	srv.Kill()
	close(stop)
	wg.Wait()
	if len(complete) < 20 {
		t.Fatalf("only %d calls completed before the kill: the load did not run", len(complete))
	}

	srv = startBinary(t, bin, data, cfg)
	defer srv.Kill()
	var page struct {
		Data []struct {
			ID               string `json:"id"`
			PromptTokens     int    `json:"prompt_tokens"`
			CompletionTokens int    `json:"completion_tokens"`
			Charge           struct {
				Total int64 `json:"total"`
			} `json:"charge"`
		} `json:"data"`
		HasMore bool `json:"has_more"`
	}
	getJSON(t, srv.URL+"/admin/v1/tenants/clinic/usage?from=2000-01-01", adminKey, &page)
	if page.HasMore {
		t.Fatal("usage did not fit one page")
	}
	recorded := map[string]int{}
	var charges int64
	for _, u := range page.Data {
		recorded[u.ID]++
		charges += u.Charge.Total
		if want, ok := complete[u.ID]; ok && (u.PromptTokens != want.prompt || u.CompletionTokens != want.completion) {
			t.Errorf("call %s: ledger has %d+%d tokens, the client saw %d+%d", u.ID, u.PromptTokens, u.CompletionTokens, want.prompt, want.completion)
		}
	}
	for id, n := range recorded {
		if n != 1 {
			t.Errorf("call %s is in the usage %d times", id, n)
		}
	}
	for id := range complete {
		if recorded[id] == 0 {
			t.Errorf("call %s reached its client complete but is not in the usage", id)
		}
	}
	t.Logf("%d calls complete at the clients, %d in the ledger (the rest were cut by the kill after settling)", len(complete), len(page.Data))

	var check struct {
		Balanced   bool
		Unbalanced []string
	}
	getJSON(t, srv.URL+"/admin/v1/ledger/check", adminKey, &check)
	if !check.Balanced {
		t.Errorf("unbalanced transactions: %v", check.Unbalanced)
	}
	var bal struct {
		BalanceMinor int64 `json:"balance_minor"`
		HeldMinor    int64 `json:"held_minor"`
	}
	getJSON(t, srv.URL+"/admin/v1/tenants/clinic/account", adminKey, &bal)
	if bal.BalanceMinor != 100000_00-charges || bal.HeldMinor != 0 {
		t.Errorf("balance %d (held %d), want the opening 10000000 less charges %d", bal.BalanceMinor, bal.HeldMinor, charges)
	}
}

// startBinary starts the aigrid binary and stops the test if it cannot.
func startBinary(t *testing.T, bin, data, cfg string) *serveproc.Process {
	t.Helper()
	p, err := serveproc.Start(bin, data, cfg, "--log-level", "error")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// crashCall makes one chat call and reports the call's id and tokens when the
// response arrived complete: the whole JSON body, or a stream through [DONE].
func crashCall(client *http.Client, url, key, text string, stream bool) (id string, prompt, completion int, ok bool) {
	body := map[string]any{"model": "chat", "max_tokens": 20, "messages": []map[string]string{{"role": "user", "content": text}}}
	if stream {
		body["stream"], body["stream_options"] = true, map[string]bool{"include_usage": true}
	}
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(context.Background(), "POST", url+"/v1/chat/completions", strings.NewReader(string(raw)))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", 0, 0, false
	}
	type usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	}
	var msg struct {
		ID    string `json:"id"`
		Usage *usage `json:"usage"`
	}
	if !stream {
		if err := json.NewDecoder(resp.Body).Decode(&msg); err != nil || msg.Usage == nil {
			return "", 0, 0, false
		}
		return strings.TrimPrefix(msg.ID, "chatcmpl-"), msg.Usage.PromptTokens, msg.Usage.CompletionTokens, true
	}
	sc := bufio.NewScanner(resp.Body)
	var u *usage
	for sc.Scan() {
		line, found := strings.CutPrefix(sc.Text(), "data: ")
		if !found {
			continue
		}
		if line == "[DONE]" {
			if u == nil {
				return "", 0, 0, false
			}
			return strings.TrimPrefix(id, "chatcmpl-"), u.PromptTokens, u.CompletionTokens, true
		}
		if json.Unmarshal([]byte(line), &msg) == nil {
			id = msg.ID
			if msg.Usage != nil {
				u = msg.Usage
			}
		}
	}
	return "", 0, 0, false
}

func getJSON(t *testing.T, url, key string, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
