package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aigrid/internal/upstreamtest"
)

// cli runs an aigrid admin command against g and returns what it printed.
func (g *grid) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append(args, "--server", g.url, "--admin-key", g.adminKey)
	err := run(context.Background(), args, &out, &errOut)
	return out.String(), err
}

func (g *grid) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := g.cli(t, args...)
	if err != nil {
		t.Fatalf("aigrid %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// TestCLIAdministration drives the admin commands against a real server:
// a provider, a tenant and a key made from the CLI serve a request, and a
// revoked key or a disabled tenant fails at once.
func TestCLIAdministration(t *testing.T) {
	up := upstreamtest.New(t, "", map[string]upstreamtest.Behaviour{"small-chat": {Reply: "sawa"}})
	g := startGrid(t, "")
	if !strings.HasPrefix(g.adminKey, "sk-admin-") {
		t.Fatalf("first start made no admin key: %q", g.adminKey)
	}

	out := g.mustCLI(t, "provider", "add", "up1", "--base-url", up.URL, "--jurisdiction", "KE",
		"--offer", "model=small-chat,serves=chat|chat-fast,input=0.1,output=0.4,max_concurrency=8,context_length=4096")
	if !strings.Contains(out, "small-chat") || !strings.Contains(out, "chat,chat-fast") {
		t.Errorf("provider add printed:\n%s", out)
	}
	if out := g.mustCLI(t, "provider", "list"); !strings.Contains(out, "up1") || !strings.Contains(out, "0.1/0.4") {
		t.Errorf("provider list:\n%s", out)
	}
	if _, err := g.cli(t, "provider", "add", "bad", "--base-url", "ftp://x", "--offer", "model=m,serves=chat"); err == nil || !strings.Contains(err.Error(), "HTTP 400") {
		t.Errorf("bad provider: %v", err)
	}
	if _, err := g.cli(t, "provider", "add", "p", "--base-url", "http://x/v1", "--offer", "model=m"); err == nil || !strings.Contains(err.Error(), "serves=") {
		t.Errorf("offer without serves: %v", err)
	}

	g.mustCLI(t, "tenant", "add", "clinic-a", "--class", "priority", "--residency", "ke,tz")
	if _, err := g.cli(t, "tenant", "add", "clinic-a"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("duplicate tenant: %v", err)
	}
	out = g.mustCLI(t, "key", "create", "clinic-a", "--name", "triage-app", "--expires", "720h")
	secret := strings.SplitN(out, "\n", 2)[0]
	if !strings.HasPrefix(secret, "sk-") || len(secret) != 35 {
		t.Fatalf("key create printed:\n%s", out)
	}
	if out := g.mustCLI(t, "tenant", "show", "clinic-a"); !strings.Contains(out, "priority") || !strings.Contains(out, "KE,TZ") || !strings.Contains(out, "triage-app") {
		t.Errorf("tenant show:\n%s", out)
	}
	// The CLI makes a tenant admin key with its own per-minute limits.
	g.mustCLI(t, "key", "create", "clinic-a", "--name", "alerts-desk", "--tenant-admin", "--rpm", "30", "--tpm", "9000")
	var keys struct {
		Data []struct {
			Name        string
			TenantAdmin bool `json:"tenant_admin"`
			Limits      struct{ RPM, TPM int64 }
		}
	}
	json.Unmarshal([]byte(g.mustCLI(t, "key", "list", "clinic-a", "--json")), &keys)
	found := false
	for _, k := range keys.Data {
		if k.Name == "alerts-desk" {
			found = k.TenantAdmin && k.Limits.RPM == 30 && k.Limits.TPM == 9000
		}
	}
	if !found {
		t.Errorf("the tenant admin key with limits: %+v", keys.Data)
	}
	// A key limited to a model no offer serves is refused, as the config
	// file refuses it: it could use nothing (it was made, and 403 at use).
	if out, err := g.cli(t, "key", "create", "clinic-a", "--models", "chat,chat-fsat"); err == nil || !strings.Contains(err.Error(), `"chat-fsat"`) {
		t.Errorf("key for a misspelt model: %q %v", out, err)
	}
	if out := g.mustCLI(t, "key", "create", "clinic-a", "--models", "chat-fast"); !strings.HasPrefix(out, "sk-") {
		t.Errorf("key for a served model: %q", out)
	}
	// A key takes per-minute limits; a quota it would never be held to is refused.
	for body, want := range map[string]int{
		`{"name": "till", "limits": {"rpm": 60, "tpm": 10000}}`:     http.StatusCreated,
		`{"name": "student", "limits": {"tokens_per_month": 5000}}`: http.StatusBadRequest,
		`{"name": "day", "limits": {"tokens_per_day": 100}}`:        http.StatusBadRequest,
		`{"name": "neg", "limits": {"rpm": -1}}`:                    http.StatusBadRequest,
	} {
		var e apiError
		resp := g.do("POST", "/admin/v1/tenants/clinic-a/keys", g.adminKey, body, nil)
		if resp.StatusCode != want {
			t.Errorf("key %s: %d, want %d", body, resp.StatusCode, want)
		}
		if want == http.StatusBadRequest {
			g.do("POST", "/admin/v1/tenants/clinic-a/keys", g.adminKey, body, &e)
			if e.Error.Param == nil || *e.Error.Param != "limits" {
				t.Errorf("key %s: %+v, want param limits", body, e)
			}
		}
	}

	chat := `{"model":"chat-fast","messages":[{"role":"user","content":"habari"}]}`
	if resp := g.do("POST", "/v1/chat/completions", secret, chat, nil); resp.StatusCode != 200 {
		t.Fatalf("the new key does not work: %d", resp.StatusCode)
	}

	g.mustCLI(t, "tenant", "disable", "clinic-a")
	if resp := g.do("POST", "/v1/chat/completions", secret, chat, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("disabled tenant: %d", resp.StatusCode)
	}
	g.mustCLI(t, "tenant", "enable", "clinic-a")
	if resp := g.do("POST", "/v1/chat/completions", secret, chat, nil); resp.StatusCode != 200 {
		t.Errorf("enabled again: %d", resp.StatusCode)
	}

	list := g.mustCLI(t, "key", "list", "clinic-a")
	fields := strings.Fields(strings.Split(list, "\n")[1])
	keyID := fields[0]
	out = g.mustCLI(t, "key", "revoke", keyID)
	if !strings.Contains(out, "revoked") {
		t.Errorf("key revoke printed %q", out)
	}
	var e apiError
	if resp := g.do("POST", "/v1/chat/completions", secret, chat, &e); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(e.Error.Message, "revoked") {
		t.Errorf("revoked key: %d %+v", resp.StatusCode, e)
	}
	if out := g.mustCLI(t, "key", "list", "clinic-a"); !strings.Contains(out, "revoked") {
		t.Errorf("key list after revoke:\n%s", out)
	}

	second := strings.SplitN(g.mustCLI(t, "key", "create", "clinic-a"), "\n", 2)[0]
	g.mustCLI(t, "provider", "remove", "up1")
	if resp := g.do("POST", "/v1/chat/completions", second, chat, &e); resp.StatusCode != http.StatusNotFound || e.Error.Code != "model_not_found" {
		t.Errorf("model of a removed provider: %d %+v", resp.StatusCode, e)
	}
	if _, err := g.cli(t, "provider", "remove", "up1"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("remove twice: %v", err)
	}
	if out := g.mustCLI(t, "tenant", "list", "--json"); !strings.Contains(out, `"name": "clinic-a"`) {
		t.Errorf("tenant list --json:\n%s", out)
	}
}

func TestCLIErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	t.Setenv("AIGRID_ADMIN_KEY", "")
	if err := run(context.Background(), []string{"tenant", "list"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "no admin key") {
		t.Errorf("without a key: %v", err)
	}
	err := run(context.Background(), []string{"tenant", "list", "--server", "http://127.0.0.1:9", "--admin-key", "k"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "cannot reach aigrid") {
		t.Errorf("no server: %v", err)
	}
	if err := run(context.Background(), []string{"key", "create", "a", "--expires", "soon", "--admin-key", "k"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "--expires") {
		t.Errorf("bad expiry: %v", err)
	}
	if err := run(context.Background(), []string{"frobnicate"}, &out, &errOut); err == nil || !strings.Contains(errOut.String(), "unknown command") {
		t.Errorf("unknown command: %v", err)
	}
}

// The help of an admin command, and the usage a bad flag prints, never show
// the admin key taken from the environment: it was the flag's default, and
// printed as such. A bad flag's error was printed twice.
func TestHelpHidesTheAdminKey(t *testing.T) {
	const secret = "sk-admin-not-for-the-screen-1234"
	t.Setenv("AIGRID_ADMIN_KEY", secret)
	for _, args := range [][]string{{"tenant", "list", "-h"}, {"tenant", "list", "--bogus"}, {"provider", "add", "-h"}} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if all := out.String() + errOut.String() + msg; strings.Contains(all, secret) || !strings.Contains(all, "AIGRID_ADMIN_KEY") {
			t.Errorf("aigrid %s printed %q", strings.Join(args, " "), all)
		}
		// A flag error is said once, then the usage.
		if strings.Count(msg, "not defined: -bogus") > 1 {
			t.Errorf("aigrid %s: the error twice: %q", strings.Join(args, " "), msg)
		}
	}
	// The key from the environment is still the one used.
	g := startGrid(t, "")
	t.Setenv("AIGRID_ADMIN_KEY", g.adminKey)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"tenant", "list", "--server", g.url}, &out, &errOut); err != nil {
		t.Errorf("with the key in the environment: %v", err)
	}
}

func TestInitAndConfigAdminKey(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"init", "--data", dir}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "sk-admin-") {
		t.Errorf("init printed %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "aigrid.db")); err != nil {
		t.Error(err)
	}

	// An admin key from the config file works, and then no key is made on start.
	g := startGrid(t, "admin_keys: [sk-admin-from-config-0001]\n")
	if g.adminKey != "" {
		t.Errorf("a key was made although the file names one")
	}
	if resp := g.do("GET", "/admin/v1/tenants", "sk-admin-from-config-0001", nil, nil); resp.StatusCode != 200 {
		t.Errorf("config admin key: %d", resp.StatusCode)
	}
}

func TestBadConfigStopsStart(t *testing.T) {
	m := NewMain()
	m.DataDir = t.TempDir()
	m.Listen = "127.0.0.1:0"
	m.ConfigPath = filepath.Join(t.TempDir(), "grid.yaml")
	os.WriteFile(m.ConfigPath, []byte("tenants:\n  - name: a\n    class: gold\n"), 0o600)
	err := m.Run(context.Background(), "", &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "grid.yaml:2: tenants[0]") {
		t.Errorf("got %v", err)
	}
}
