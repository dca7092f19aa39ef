package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aigrid"
	"aigrid/sqlite"
)

func TestParseFull(t *testing.T) {
	f, err := Load(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Server.Listen != "127.0.0.1:9090" || f.Server.MaxBodyBytes != 2<<20 || time.Duration(f.Server.ShutdownGrace) != 45*time.Second || f.Server.LogLevel != "debug" {
		t.Errorf("server: %+v", f.Server)
	}
	if d := f.Dispatch; d.MaxAttempts != 2 || time.Duration(d.Deadline) != 90*time.Second || time.Duration(d.QueueTimeout) != 20*time.Second || d.MaxQueue != 500 {
		t.Errorf("dispatch: %+v", d)
	}
	if len(f.ServiceModels) != 1 || f.ServiceModels[0].Fallback != "chat-small" {
		t.Errorf("service models: %+v", f.ServiceModels)
	}
	ps := f.ProviderConfigs()
	up1, up2 := ps[0], ps[1]
	if up1.Kind != "openai" || up1.APIKeyEnv != "AIGRID_TEST_UP1_KEY" || up1.Jurisdiction != "KE" || time.Duration(up1.Timeouts.Idle) != 10*time.Second || time.Duration(up1.Timeouts.Total) != 5*time.Minute || time.Duration(up1.ProbeInterval) != 15*time.Second {
		t.Errorf("up1: %+v", up1)
	}
	o := up1.Offers[0]
	if o.Model != "small-chat" || len(o.Serves) != 2 || o.Price.Output != 400_000 || o.MaxConcurrency != 32 || o.ContextLength != 8192 {
		t.Errorf("offer: %+v", o)
	}
	if !up1.Offers[1].Can(aigrid.CapEmbeddings) || up1.Offers[1].Can(aigrid.CapChat) {
		t.Errorf("capabilities: %+v", up1.Offers[1])
	}
	if up2.Kind != "openai" || !up2.RetainsData || !up2.Disabled {
		t.Errorf("up2 (kind defaults to openai): %+v", up2)
	}
	a := f.Tenants[0]
	if a.Class != "emergency" || len(a.Residency) != 2 || !a.NoRetention || !a.Brownout || len(a.Keys) != 2 {
		t.Errorf("tenant: %+v", a)
	}
	k := a.Keys[1]
	if k.Secret != "sk-clinic-a-2" || k.Name != "mobile-app" || k.Models[0] != "chat" || !k.Expires.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("key: %+v", k)
	}
	if d := f.Tenants[1].Disabled; d == nil || !*d {
		t.Error("school-b not disabled")
	}
	mq := f.Packages.Anomaly.MQTT
	if len(mq) != 2 || mq[0].Broker != "mqtts://grid:s3cret@broker.example:8883" || mq[0].Tenant != "clinic-a" || mq[0].Prefix != "sensors/plant-1" ||
		mq[0].Results != "results/plant-1" || mq[0].ClientID != "aigrid-plant-1" {
		t.Fatalf("mqtt: %+v", mq)
	}
	// The second has a default client id of its own, and its password from the environment.
	if id := mq[1].ClientID; !strings.HasPrefix(id, "aigrid-clinic-a-") || len(id) != len("aigrid-clinic-a-")+8 || id != defaultClientID("clinic-a", "sensors/plant-2") {
		t.Errorf("default client id %q", id)
	}
	if defaultClientID("clinic-a", "sensors/plant-1") == mq[1].ClientID {
		t.Error("two prefixes of one tenant share a default client id")
	}
	t.Setenv("AIGRID_TEST_MQTT_PASSWORD", "p@ss/word")
	if u := mq[1].BrokerURL(); u != "mqtt://grid:p%40ss%2Fword@10.0.0.7" {
		t.Errorf("broker URL with the password from the environment: %s", u)
	}
	if u := mq[0].BrokerURL(); u != mq[0].Broker {
		t.Errorf("broker URL %s", u)
	}
}

func TestErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown top key", "tariffz: []\n", `grid.yaml:1: unknown key "tariffz"`},
		{"unknown provider key", "providers:\n  - name: up1\n    base_ulr: http://x/v1\n", `grid.yaml:3: unknown key "base_ulr"`},
		{"wrong type", "providers:\n  - name: up1\n    base_url: http://x/v1\n    offers:\n      - model: m\n        serves: [chat]\n        max_concurrency: lots\n", `grid.yaml:7: expected an integer, got "lots"`},
		{"bad class", "tenants:\n  - name: a\n  - name: b\n    class: gold\n", `grid.yaml:3: tenants[1]: tenant "b": class "gold" is not one of`},
		{"local without path", "providers:\n  - name: eng\n    kind: local\n    offers: [{model: m, serves: [chat]}]\n", `grid.yaml:2: providers[0]: provider "eng": offer "m" needs a path`},
		{"local with base_url", "providers:\n  - name: eng\n    kind: local\n    base_url: http://x\n    offers: [{model: m, path: m.gguf, serves: [chat]}]\n", `has no base_url`},
		{"bad url", "providers:\n  - name: up1\n    base_url: 127.0.0.1:9100\n    offers: [{model: m, serves: [chat]}]\n", `base_url "127.0.0.1:9100" must be an absolute http or https URL`},
		{"no serves", "providers:\n  - name: up1\n    base_url: http://x/v1\n    offers: [{model: m}]\n", `serves no service model`},
		{"duplicate tenant", "tenants:\n  - name: a\n  - name: a\n", `grid.yaml:3: tenants[1].name: tenant "a" is listed twice`},
		{"bad jurisdiction", "tenants:\n  - name: a\n    residency: [Kenya]\n", `residency "Kenya" is not an ISO 3166-1 alpha-2 code`},
		{"bad duration", "providers:\n  - name: up1\n    base_url: http://x/v1\n    timeouts: {idle: soon}\n    offers: [{model: m, serves: [chat]}]\n", `grid.yaml:4: "soon" is not a duration`},
		{"unknown key field", "tenants:\n  - name: a\n    keys:\n      - {secret: sk-abcdefgh, modles: [chat]}\n", `grid.yaml:4: unknown key "modles"`},
		{"key for unserved model", "providers:\n  - {name: up1, base_url: http://x/v1, offers: [{model: m, serves: [chat]}]}\ntenants:\n  - name: a\n    keys:\n      - {secret: sk-abcdefgh, models: [vision]}\n", `grid.yaml:6: tenants[0].keys[0].models: no offer in this file serves the model "vision" (served: chat)`},
		{"shared key", "tenants:\n  - name: a\n    keys: [sk-abcdefgh]\n  - name: b\n    keys: [sk-abcdefgh]\n", `grid.yaml:5: tenants[1].keys[0]: this key is also listed under tenants[0]`},
		{"bad expiry", "tenants:\n  - name: a\n    keys:\n      - {secret: sk-abcdefgh, expires: tomorrow}\n", `expires "tomorrow" is not a date`},
		{"bad size", "server: {max_body_bytes: huge}\n", `grid.yaml:1: expected a size`},
		{"bad yaml", "providers: [\n", `grid.yaml:`},
		{"fallback not served", "providers:\n  - {name: up1, base_url: http://x/v1, offers: [{model: m, serves: [chat]}]}\nservice_models:\n  - {name: chat, fallback: chat-tiny}\n", `grid.yaml:4: service_models[0].fallback: no offer in this file serves the fallback "chat-tiny"`},
		{"own fallback", "service_models:\n  - {name: chat, fallback: chat}\n", `cannot be its own fallback`},
		// A missing model file is the file's problem, with its line: the
		// provider was left out at start with only a line in the log.
		{"missing model file", "providers:\n  - name: eng\n    kind: local\n    offers:\n      - {model: m, path: /nonexistent/m.gguf, serves: [chat]}\n",
			`grid.yaml:5: providers[0].offers[0].path: stat /nonexistent/m.gguf: no such file or directory`},
		{"short admin key", "admin_keys: [abc]\n", `grid.yaml:1: admin_keys[0]: an admin key must be at least 16 characters long`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("grid.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("got\n  %v\nwant it to contain\n  %s", err, c.want)
			}
		})
	}
}

func TestMQTTErrors(t *testing.T) {
	const head = "tenants: [{name: water-utility}, {name: clinic}]\npackages:\n  anomaly:\n    mqtt:\n"
	cases := []struct{ name, entries, want string }{
		{"no broker", "      - {tenant: clinic, prefix: s}\n", `grid.yaml:5: packages.anomaly.mqtt[0].broker: the broker URL is required`},
		{"bad scheme", "      - {broker: http://b.example, tenant: clinic, prefix: s}\n", `grid.yaml:5: packages.anomaly.mqtt[0].broker: "http://b.example": the scheme must be mqtt or mqtts (TLS), not "http"`},
		{"password redacted", "      - {broker: \"ws://u:hunter2@b.example\", tenant: clinic, prefix: s}\n", `"ws://u:xxxxx@b.example": the scheme`},
		{"no host", "      - {broker: \"mqtt://:1883\", tenant: clinic, prefix: s}\n", `names no host`},
		{"bad port", "      - {broker: \"mqtt://b.example:99999\", tenant: clinic, prefix: s}\n", `port "99999" is not a number from 1 to 65535`},
		{"path", "      - {broker: mqtt://b.example/sensors, tenant: clinic, prefix: s}\n", `a broker URL has no path or query`},
		{"not a url", "      - {broker: \"mqtt://b.example:port\", tenant: clinic, prefix: s}\n", `is not a URL`},
		{"unknown tenant", "      - broker: mqtt://b.example\n        tenant: water\n        prefix: s\n", `grid.yaml:6: packages.anomaly.mqtt[0].tenant: no tenant "water" in this file`},
		{"no tenant", "      - {broker: mqtt://b.example, prefix: s}\n", `packages.anomaly.mqtt[0].tenant: the tenant whose series the readings feed is required`},
		{"empty prefix", "      - {broker: mqtt://b.example, tenant: clinic, prefix: \"\"}\n", `packages.anomaly.mqtt[0].prefix: the topic prefix is required`},
		{"wildcard prefix", "      - {broker: mqtt://b.example, tenant: clinic, prefix: \"s/#\"}\n", `prefix: "s/#" holds a wildcard`},
		{"trailing slash", "      - {broker: mqtt://b.example, tenant: clinic, prefix: s/}\n", `prefix: "s/" ends with /`},
		{"system topic", "      - {broker: mqtt://b.example, tenant: clinic, prefix: $SYS/x}\n", `starts with $`},
		{"results wildcard", "      - {broker: mqtt://b.example, tenant: clinic, prefix: s, results: \"r/+\"}\n", `results: "r/+" holds a wildcard`},
		{"results under prefix", "      - {broker: mqtt://b.example, tenant: clinic, prefix: s, results: s/out}\n", `results: "s/out" is under the prefix "s"`},
		{"bad client id", "      - {broker: mqtt://b.example, tenant: clinic, prefix: s, client_id: \"a b\"}\n", `client_id: "a b" may hold only printable ASCII`},
		{"duplicate client id", "      - {broker: mqtt://b.example, tenant: clinic, prefix: s, client_id: grid}\n      - {broker: \"mqtt://B.example:1883\", tenant: water-utility, prefix: t, client_id: grid}\n",
			`grid.yaml:6: packages.anomaly.mqtt[1].client_id: client id "grid" is also used by packages.anomaly.mqtt[0] on the same broker`},
		{"same subscription twice", "      - {broker: mqtts://b.example, tenant: clinic, prefix: s}\n      - {broker: \"mqtts://b.example:8883\", tenant: clinic, prefix: s}\n", `is also used by packages.anomaly.mqtt[0]`},
		{"password twice", "      - {broker: \"mqtt://u:p@b.example\", password_env: P, tenant: clinic, prefix: s}\n", `has a password and password_env names another`},
		{"password without user", "      - {broker: mqtt://b.example, password_env: P, tenant: clinic, prefix: s}\n", `password_env P needs a user name in the broker URL`},
		{"unknown key", "      - {broker: mqtt://b.example, tenant: clinic, prefix: s, qos: 2}\n", `grid.yaml:5: unknown key "qos"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("grid.yaml", []byte(head+c.entries))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("got\n  %v\nwant it to contain\n  %s", err, c.want)
			}
		})
	}
	// The same client id on two brokers, and two subscriptions of one
	// tenant with default ids, are fine.
	ok := head + "      - {broker: mqtt://a.example, tenant: clinic, prefix: s, client_id: grid}\n" +
		"      - {broker: mqtt://b.example, tenant: clinic, prefix: s, client_id: grid}\n" +
		"      - {broker: mqtt://b.example, tenant: clinic, prefix: t}\n      - {broker: mqtt://b.example, tenant: clinic, prefix: u}\n"
	if _, err := Parse("grid.yaml", []byte(ok)); err != nil {
		t.Error(err)
	}
}

func TestSeveralErrorsAtOnce(t *testing.T) {
	_, err := Parse("grid.yaml", []byte("tenants:\n  - name: a\n    class: gold\n  - name: b\n    class: silver\n"))
	errs, ok := err.(Errors)
	if !ok || len(errs) != 2 || errs[0].Line != 2 || errs[1].Line != 4 {
		t.Errorf("got %#v", err)
	}
}

func TestEmpty(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "---\n"} {
		f, err := Parse("grid.yaml", []byte(in))
		if err != nil || len(f.Providers)+len(f.Tenants) != 0 {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestApplyIdempotent(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "aigrid.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// Something the file does not name stays.
	store.CreateTenant(ctx, &aigrid.Tenant{Name: "left-alone"})

	f, err := Load(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Apply(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	if res.Providers != 2 || res.ServiceModels != 1 || res.Tenants != 2 || res.Keys != 2 || res.AdminKeys != 1 {
		t.Errorf("result %+v", res)
	}
	if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0], "AIGRID_TEST_UP1_KEY") || !strings.Contains(res.Warnings[1], "packages.anomaly.mqtt[1]: the environment variable AIGRID_TEST_MQTT_PASSWORD") {
		t.Errorf("warnings %v", res.Warnings)
	}
	if _, err := f.Apply(ctx, store); err != nil {
		t.Fatalf("second apply: %v", err)
	}
	tenants, _ := store.ListTenants(ctx)
	if len(tenants) != 3 {
		t.Errorf("%d tenants after two applies, want 3", len(tenants))
	}
	a, _ := store.FindTenantByName(ctx, "clinic-a")
	keys, _ := store.ListKeys(ctx, a.ID)
	if len(keys) != 2 || keys[1].Name != "mobile-app" || keys[1].ExpiresAt == nil {
		t.Errorf("keys %+v", keys)
	}
	k, err := store.FindKeyByHash(ctx, aigrid.HashKey("sk-clinic-a-1"))
	if err != nil || k.TenantID != a.ID {
		t.Errorf("key by hash: %+v %v", k, err)
	}
	if n, _ := store.CountAdminKeys(ctx); n != 1 {
		t.Errorf("%d admin keys", n)
	}
	p, _ := store.FindProvider(ctx, "up1")
	if p.Offers[0].MaxConcurrency != 32 {
		t.Errorf("provider %+v", p)
	}
}

// A tenant the operator disabled through the admin API stays disabled when
// the grid restarts with a file that says nothing of it: the restart enabled
// it again, silently. A file that says disabled: false enables it.
func TestApplyKeepsDisabled(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "aigrid.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	apply := func(yaml string) *aigrid.Tenant {
		t.Helper()
		f, err := Parse("grid.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Apply(ctx, store); err != nil {
			t.Fatal(err)
		}
		tn, err := store.FindTenantByName(ctx, "clinic-a")
		if err != nil {
			t.Fatal(err)
		}
		return tn
	}
	if tn := apply("tenants:\n  - name: clinic-a\n"); tn.Disabled {
		t.Fatal("a new tenant is disabled")
	}
	yes := true
	if _, err := store.UpdateTenant(ctx, "clinic-a", aigrid.TenantUpdate{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if tn := apply("tenants:\n  - name: clinic-a\n    class: priority\n"); !tn.Disabled || tn.Class != aigrid.ClassPriority {
		t.Errorf("after a restart with a file silent on it: %+v", tn)
	}
	if tn := apply("tenants:\n  - name: clinic-a\n    disabled: false\n"); tn.Disabled {
		t.Error("disabled: false in the file did not enable the tenant")
	}
	if tn := apply("tenants:\n  - name: clinic-a\n    disabled: true\n"); !tn.Disabled {
		t.Error("disabled: true in the file did not disable the tenant")
	}
}

func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("tenants:\n  - name: a\n    keys: [{secret: x, expires: 2027-01-01}]\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		Parse("fuzz.yaml", data)
	})
}

// Applying the billing part twice changes nothing: the opening balance is
// credited once, and a tariff version the operator added through the API
// survives a restart that applies the file again.
func TestApplyBillingOnce(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "aigrid.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	f, err := Parse("grid.yaml", []byte(`
currency: KES
timezone: Africa/Nairobi
tariffs:
  - name: public
    blocks:
      - {up_to: 200000, input: 0, output: 0}
      - {input: 20, output: 60}
    off_peak: {from: "22:00", to: "06:00", factor: 0.5}
tenants:
  - name: clinic-a
    tariff: public
    account: {type: prepaid, balance: 100.50}
    limits: {rpm: 600, tokens_per_month: 10000000}
`))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		res, err := f.Apply(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Warnings) != 0 {
			t.Errorf("warnings applying the same file: %v", res.Warnings)
		}
	}
	tariffs, _ := store.ListTariffs(ctx)
	if len(tariffs) != 1 || tariffs[0].OffPeak == nil || tariffs[0].OffPeak.Factor != 500 || tariffs[0].OffPeak.From != 22*60 {
		t.Fatalf("tariffs %+v", tariffs)
	}
	later := &aigrid.Tariff{Name: "public", Effective: time.Now().AddDate(0, 1, 0), Blocks: []aigrid.Block{{Input: 10_000000, Output: 30_000000}}}
	if err := store.PutTariff(ctx, later); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Apply(ctx, store); err != nil {
		t.Fatal(err)
	}
	if tariffs, _ := store.ListTariffs(ctx); len(tariffs) != 2 {
		t.Errorf("%d tariff versions after the API's change and a restart, want 2", len(tariffs))
	}
	tn, _ := store.FindTenantByName(ctx, "clinic-a")
	bal, _ := store.AccountBalance(ctx, aigrid.TenantAccount(tn.ID), time.Time{})
	acct, _ := store.GetAccount(ctx, tn.ID)
	if bal != 10050 || acct.Type != aigrid.Prepaid || acct.Tariff != "public" || acct.Limits.RPM != 600 || acct.Limits.TokensPerMonth != 10000000 {
		t.Errorf("balance %d, account %+v", bal, acct)
	}
	// Another opening balance in the file later credits nothing, and says so.
	f.Tenants[0].Account.Balance = "250"
	res, err := f.Apply(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	if bal, _ := store.AccountBalance(ctx, aigrid.TenantAccount(tn.ID), time.Time{}); bal != 10050 || len(res.Warnings) != 1 ||
		!strings.Contains(res.Warnings[0], "credited as 100.50 KES at its first start; the file's 250.00 KES changes nothing") {
		t.Errorf("balance %d, warnings %v", bal, res.Warnings)
	}
}

func TestBillingConfigErrors(t *testing.T) {
	for yaml, want := range map[string]string{
		"currency: KESH":         "ISO 4217",
		"timezone: Mars/Olympus": `timezone: "Mars/Olympus" is not a time zone`,
		"tariffs: [{name: t, blocks: [{input: 1, output: 1}, {input: 2, output: 2}]}]":                                   "only the last block may leave out up_to",
		"currency: KES\ntenants: [{name: a, account: {credit_limit: 5}}]":                                                "account: type is required",
		"tariffs: [{name: t, blocks: [{up_to: 5, input: 1, output: 1}]}]":                                                "last block",
		"tariffs: [{name: t, blocks: [{input: 1, output: 1}], off_peak: {from: \"25:00\", to: \"06:00\", factor: 0.5}}]": "HH:MM",
		"tenants: [{name: a, tariff: nope}]":                                                                             "no tariff",
		"tenants: [{name: a, account: {type: credit}}]":                                                                  "prepaid or postpaid",
		"currency: KES\ntenants: [{name: a, account: {type: prepaid, balance: 1.234}}]":                                  "not an amount",
	} {
		_, err := Parse("grid.yaml", []byte(yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", yaml, err, want)
		}
	}
}

// The full example of docs/configuration.md is a file aigrid accepts.
func TestDocumentedExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "## A full example\n\n```yaml\n")
	example, _, closed := strings.Cut(rest, "```\n")
	if !ok || !closed {
		t.Fatal("no full example in docs/configuration.md")
	}
	f, err := Parse("configuration.md", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Packages.Anomaly.MQTT) != 1 {
		t.Errorf("the example's MQTT subscriptions: %+v", f.Packages.Anomaly.MQTT)
	}
}
