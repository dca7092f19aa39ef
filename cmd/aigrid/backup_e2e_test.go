package main

import (
	"bytes"
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

	"aigrid/internal/upstreamtest"
)

// TestBackupAndRestore backs a grid up while tenants' calls go on, restores
// the copy into a new data directory and serves from it: every call answered
// before the backup began is in it, once, the ledger balances, keys and
// payment references still hold, and new calls are metered.
func TestBackupAndRestore(t *testing.T) {
	up := upstreamtest.New(t, "", map[string]upstreamtest.Behaviour{"small-chat": {}})
	config := strings.Replace(billingConfig, "UPSTREAM", up.URL, 1)
	g := startGrid(t, config)
	const key = "sk-clinic-a-0001"
	work := t.TempDir()
	cli := func(g *grid, args ...string) (string, error) {
		var out, errb strings.Builder
		err := run(t.Context(), append(args, "--server", g.url, "--admin-key", g.adminKey), &out, &errb)
		return out.String(), err
	}
	if out, err := cli(g, "account", "topup", "clinic-a", "1000", "--reference", "MPESA-BK1"); err != nil {
		t.Fatalf("topup: %q %v", out, err)
	}

	// chat makes one call and returns its id in the ledger once its answer
	// is complete.
	chat := func(g *grid, stream bool) (string, error) {
		body, _ := json.Marshal(chatBody("backup me please", stream))
		req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			return "", fmt.Errorf("status %d %.200s %v", resp.StatusCode, raw, err)
		}
		if stream && !bytes.HasSuffix(raw, []byte("data: [DONE]\n\n")) {
			return "", fmt.Errorf("stream cut: %.200s", raw)
		}
		var id struct{ ID string }
		line := raw
		if stream {
			line = bytes.TrimPrefix(bytes.SplitN(raw, []byte("\n"), 2)[0], []byte("data: "))
		}
		if err := json.Unmarshal(line, &id); err != nil || !strings.HasPrefix(id.ID, "chatcmpl-") {
			return "", fmt.Errorf("no id in %.200s: %v", raw, err)
		}
		return strings.TrimPrefix(id.ID, "chatcmpl-"), nil
	}
	var mu sync.Mutex
	var answered []string // ids of the calls answered before the backup began
	for i := range 20 {
		id, err := chat(g, i%2 == 1)
		if err != nil {
			t.Fatal(err)
		}
		answered = append(answered, id)
	}

	// Calls go on during the backup, from four clients.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var during []string
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, err := chat(g, (c+i)%2 == 0)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				during = append(during, id)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	answered = append(answered, during...) // answered before the backup below began
	mu.Unlock()
	backup := filepath.Join(work, "grid.db")
	out, err := cli(g, "backup", "--out", backup)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if !strings.Contains(out, "backup written to "+backup) || !strings.Contains(out, "KES, 3 tenants") || !strings.Contains(out, "integrity checked") {
		t.Errorf("backup said %q", out)
	}
	if st, err := os.Stat(backup); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("backup file %v, %v: want it readable by its owner only", st, err)
	}
	if _, err := os.Stat(backup + ".part"); err == nil {
		t.Error("the partial file was left behind")
	}
	if left, _ := filepath.Glob(filepath.Join(g.main.DataDir, "aigrid-backup-*")); len(left) > 0 {
		t.Errorf("the server left its copies: %v", left)
	}
	// A second backup never overwrites the first.
	if _, err := cli(g, "backup", "--out", backup); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("a backup over an existing file: %v", err)
	}
	// Without --out the server names the file, here.
	t.Chdir(work)
	if out, err := cli(g, "backup"); err != nil || !strings.Contains(out, "backup written to aigrid-backup-") {
		t.Errorf("backup without --out: %q %v", out, err)
	}
	if err := run(t.Context(), []string{"backup", "--out", filepath.Join(work, "x.db"), "--server", g.url, "--admin-key", "sk-not-the-admin"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a backup with a wrong admin key: %v", err)
	}
	var before struct {
		BalanceMinor int64 `json:"balance_minor"`
	}
	g.do("GET", "/v1/balance", key, nil, &before)
	g.main.Close()

	restored := filepath.Join(work, "restored")
	var rout strings.Builder
	if err := run(t.Context(), []string{"restore", "--from", backup, "--data", restored}, &rout, io.Discard); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !strings.Contains(rout.String(), "aigrid serve --data "+restored) {
		t.Errorf("restore said %q", rout.String())
	}
	// Restoring again, into a directory that holds a store, is refused.
	if err := run(t.Context(), []string{"restore", "--from", backup, "--data", restored}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "already holds a store") {
		t.Errorf("restore over a store: %v", err)
	}
	junk := filepath.Join(work, "junk.db")
	os.WriteFile(junk, []byte(strings.Repeat("not sqlite ", 100)), 0o600)
	if err := run(t.Context(), []string{"restore", "--from", junk, "--data", filepath.Join(work, "other")}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "not an aigrid store") {
		t.Errorf("restore of junk: %v", err)
	}
	if _, err := os.Stat(filepath.Join(work, "other", "aigrid.db")); err == nil {
		t.Error("restoring junk left a store behind")
	}

	g2 := startGridIn(t, restored, config)
	if g2.adminKey != "" {
		t.Error("the restored grid made a new admin key: the operator's keys are in the store")
	}
	g2.adminKey = g.adminKey
	var page struct {
		Data []struct{ ID string } `json:"data"`
	}
	g2.do("GET", "/v1/usage?limit=1000", key, nil, &page)
	seen := map[string]int{}
	for _, u := range page.Data {
		seen[u.ID]++
	}
	for _, id := range answered {
		if seen[id] != 1 {
			t.Errorf("call %s, answered before the backup began, is in the restored usage %d times", id, seen[id])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("call %s is in the restored usage %d times", id, n)
		}
	}
	var check struct{ Balanced bool }
	if r := g2.do("GET", "/admin/v1/ledger/check", g2.adminKey, nil, &check); r.StatusCode != 200 || !check.Balanced {
		t.Error("the restored ledger does not balance")
	}
	var after struct {
		BalanceMinor int64 `json:"balance_minor"`
	}
	g2.do("GET", "/v1/balance", key, nil, &after)
	if after.BalanceMinor < before.BalanceMinor {
		t.Errorf("restored balance %d, below the balance after the last call (%d)", after.BalanceMinor, before.BalanceMinor)
	}
	// The payment recorded before is still known by its reference.
	if out, err := cli(g2, "account", "topup", "clinic-a", "1000", "--reference", "MPESA-BK1"); err != nil || !strings.Contains(out, "recorded before") {
		t.Errorf("the top-up repeated on the restored grid: %q %v", out, err)
	}
	// New calls are metered on the restored grid.
	id, err := chat(g2, true)
	if err != nil {
		t.Fatal(err)
	}
	g2.do("GET", "/v1/usage?limit=1000", key, nil, &page)
	if len(page.Data) != len(seen)+1 || page.Data[len(page.Data)-1].ID != id {
		t.Errorf("after a new call the usage has %d calls (the last %+v), want %d ending in %s", len(page.Data), page.Data[len(page.Data)-1], len(seen)+1, id)
	}
}
