package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aigrid"
)

// TestBackupWhileWriting copies the store while a writer commits usage: the
// copy is whole (it passes the integrity check and opens), holds every
// transaction committed before the backup began, and none half-written.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	db, tenants := openWithTenants(t, "clinic-a")
	tenant := tenants[0]
	if err := db.PutDoc(ctx, &aigrid.Doc{Package: "grid", ID: "currency", Body: []byte(`"KES"`)}); err != nil {
		t.Fatal(err)
	}
	usageTx := func(i int64) *aigrid.LedgerTx {
		id := fmt.Sprintf("call-%d", i)
		at := time.Date(2026, 11, 30, 12, 0, int(i), 0, time.UTC)
		return &aigrid.LedgerTx{Key: "usage:" + id, Kind: aigrid.TxUsage, TenantID: tenant.ID, At: at,
			Entries: []aigrid.Entry{{Account: aigrid.TenantAccount(tenant.ID), Amount: -3}, {Account: aigrid.AccountRevenue, Amount: 3}},
			Usage: &aigrid.UsageRecord{ID: id, TenantID: tenant.ID, At: at, Service: "chat", Provider: "up1", Model: "m",
				PromptTokens: 10, CompletionTokens: 5, Charge: aigrid.Charge{Total: 3}}}
	}
	var committed atomic.Int64 // transactions committed so far
	commit := func(n int) {
		batch := make([]*aigrid.LedgerTx, n)
		for i := range batch {
			batch[i] = usageTx(committed.Load() + int64(i))
		}
		if _, err := db.CommitTxs(ctx, batch); err != nil {
			t.Error(err)
		}
		committed.Add(int64(n))
	}
	commit(2000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				commit(50)
			}
		}
	}()
	dir := t.TempDir()
	before := committed.Load()
	path, err := db.Backup(ctx, dir)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := filepath.Match(filepath.Join(dir, BackupPattern), path); !ok {
		t.Errorf("backup at %s, not named by %s in %s", path, BackupPattern, dir)
	}
	info, err := Inspect(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Schema != len(migrations) || info.Currency != "KES" || info.Tenants != 1 {
		t.Errorf("inspected %+v", info)
	}
	if info.Calls < before || info.Calls > committed.Load() || info.Calls%50 != 0 {
		t.Errorf("the copy holds %d calls; %d were committed before it began, %d after, in batches of 50",
			info.Calls, before, committed.Load())
	}
	// A minute of the tenant's calls is one transaction, or more when
	// commits split it.
	if minutes := (info.Calls + 59) / 60; info.Transactions < minutes || info.Transactions > info.Calls {
		t.Errorf("%d transactions for %d calls a second apart", info.Transactions, info.Calls)
	}
	if want := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).Add(time.Duration(info.Calls-1) * time.Second); !info.Last.Equal(want) {
		t.Errorf("last at %s, want the last call's %s", info.Last, want)
	}

	// The copy is a store that opens and balances.
	restored, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	unbalanced, err := restored.CheckLedger(ctx)
	if err != nil || len(unbalanced) != 0 {
		t.Errorf("unbalanced %v, %v", unbalanced, err)
	}
	bal, err := restored.AccountBalance(ctx, aigrid.TenantAccount(tenant.ID), time.Now())
	if err != nil || bal != aigrid.Money(-3*info.Calls) {
		t.Errorf("balance %d, %v; want %d", bal, err, -3*info.Calls)
	}
}

func TestInspectRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	db, path := open(t)
	if err := db.CreateTenant(ctx, &aigrid.Tenant{Name: "clinic-a"}); err != nil {
		t.Fatal(err)
	}
	good, err := db.Backup(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// The second page's header and cell pointers overwritten: the file's
	// header still says SQLite.
	damaged := append([]byte(nil), raw...)
	for i := 4096; i < 4096+64; i++ {
		damaged[i] = 0xA5
	}
	empty, err := Open(filepath.Join(dir, "empty.db"))
	if err != nil {
		t.Fatal(err)
	}
	empty.Close()
	cases := []struct {
		name, path, want string
	}{
		{"text", write("notes.txt", []byte("not a database at all, but long enough to have a header of sorts")), "is not an aigrid store"},
		{"truncated", write("cut.db", raw[:len(raw)/2]), ""},
		{"damaged", write("damaged.db", damaged), ""},
		{"a directory", dir, "is not a file"},
		{"missing", filepath.Join(dir, "nothing.db"), "no such file"},
	}
	for _, c := range cases {
		_, err := Inspect(ctx, c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
	// A store that is not this project's (no schema) and the live file
	// itself (schema, tenants) both say what they are.
	if info, err := Inspect(ctx, path); err != nil || info.Tenants != 1 {
		t.Errorf("the live store: %+v, %v", info, err)
	}
	if info, err := Inspect(ctx, filepath.Join(dir, "empty.db")); err != nil || info.Tenants != 0 || info.Transactions != 0 {
		t.Errorf("a new store: %+v, %v", info, err)
	}
}
