package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"aigrid"
)

func open(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aigrid.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestTenants(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t)
	a := &aigrid.Tenant{Name: "clinic-a", Residency: []string{"KE", "TZ"}}
	if err := db.CreateTenant(ctx, a); err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || a.Class != aigrid.ClassStandard || a.CreatedAt.IsZero() {
		t.Fatalf("created %+v", a)
	}
	if err := db.CreateTenant(ctx, &aigrid.Tenant{Name: "clinic-a"}); aigrid.ErrorCode(err) != aigrid.EConflict {
		t.Fatalf("duplicate: %v", err)
	}
	if err := db.CreateTenant(ctx, &aigrid.Tenant{Name: "x", Class: "gold"}); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Fatalf("bad class: %v", err)
	}
	up := &aigrid.Tenant{Name: "clinic-a", Class: aigrid.ClassEmergency, NoRetention: true}
	if err := db.UpsertTenant(ctx, up); err != nil {
		t.Fatal(err)
	}
	if up.ID != a.ID || !up.CreatedAt.Equal(a.CreatedAt) {
		t.Errorf("upsert changed identity: %+v vs %+v", up, a)
	}
	got, err := db.FindTenantByName(ctx, "clinic-a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Class != aigrid.ClassEmergency || !got.NoRetention || got.Residency != nil {
		t.Errorf("after upsert: %+v", got)
	}
	disabled := true
	res := []string{"UG"}
	got, err = db.UpdateTenant(ctx, "clinic-a", aigrid.TenantUpdate{Disabled: &disabled, Residency: &res})
	if err != nil || !got.Disabled || got.Residency[0] != "UG" || got.Class != aigrid.ClassEmergency {
		t.Fatalf("update: %+v %v", got, err)
	}
	bad := aigrid.ServiceClass("gold")
	if _, err := db.UpdateTenant(ctx, "clinic-a", aigrid.TenantUpdate{Class: &bad}); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Errorf("update to bad class: %v", err)
	}
	if _, err := db.UpdateTenant(ctx, "nobody", aigrid.TenantUpdate{Disabled: &disabled}); aigrid.ErrorCode(err) != aigrid.ENotFound {
		t.Errorf("update unknown: %v", err)
	}
	if _, err := db.FindTenantByID(ctx, a.ID); err != nil {
		t.Error(err)
	}
	if _, err := db.FindTenantByID(ctx, 999); aigrid.ErrorCode(err) != aigrid.ENotFound {
		t.Errorf("find unknown id: %v", err)
	}
	db.CreateTenant(ctx, &aigrid.Tenant{Name: "b-school"})
	list, err := db.ListTenants(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "b-school" {
		t.Errorf("list: %v %v", list, err)
	}
}

func TestKeys(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t)
	a := &aigrid.Tenant{Name: "a"}
	b := &aigrid.Tenant{Name: "b"}
	db.CreateTenant(ctx, a)
	db.CreateTenant(ctx, b)

	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	k := &aigrid.Key{TenantID: a.ID, Name: "app", Hint: "sk-…abcd", Hash: aigrid.HashKey("sk-1"), Models: []string{"chat"}, ExpiresAt: &exp}
	if err := db.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	again := &aigrid.Key{TenantID: a.ID, Hash: aigrid.HashKey("sk-1")}
	if err := db.CreateKey(ctx, again); err != nil || again.ID != k.ID || again.Name != "app" {
		t.Fatalf("idempotent create: %+v %v", again, err)
	}
	if err := db.CreateKey(ctx, &aigrid.Key{TenantID: b.ID, Hash: aigrid.HashKey("sk-1")}); aigrid.ErrorCode(err) != aigrid.EConflict {
		t.Fatalf("other tenant's key: %v", err)
	}
	got, err := db.FindKeyByHash(ctx, aigrid.HashKey("sk-1"))
	if err != nil || got.ID != k.ID || got.Models[0] != "chat" || !got.ExpiresAt.Equal(exp) || got.RevokedAt != nil {
		t.Fatalf("find: %+v %v", got, err)
	}
	if _, err := db.FindKeyByHash(ctx, "nope"); aigrid.ErrorCode(err) != aigrid.ENotFound {
		t.Errorf("unknown hash: %v", err)
	}
	first, err := db.RevokeKey(ctx, k.ID)
	if err != nil || first.RevokedAt == nil {
		t.Fatalf("revoke: %+v %v", first, err)
	}
	second, _ := db.RevokeKey(ctx, k.ID)
	if !second.RevokedAt.Equal(*first.RevokedAt) {
		t.Errorf("second revoke moved the time")
	}
	if _, err := db.RevokeKey(ctx, "key_nope"); aigrid.ErrorCode(err) != aigrid.ENotFound {
		t.Errorf("revoke unknown: %v", err)
	}
	keys, err := db.ListKeys(ctx, a.ID)
	if err != nil || len(keys) != 1 {
		t.Errorf("list: %v %v", keys, err)
	}

	past := time.Now().Add(-time.Hour)
	db.CreateKey(ctx, &aigrid.Key{Admin: true, Hash: aigrid.HashKey("adm-old"), ExpiresAt: &past})
	if n, _ := db.CountAdminKeys(ctx); n != 0 {
		t.Errorf("expired admin key counted: %d", n)
	}
	db.CreateKey(ctx, &aigrid.Key{Admin: true, Hash: aigrid.HashKey("adm")})
	if n, _ := db.CountAdminKeys(ctx); n != 1 {
		t.Errorf("admin keys: %d", n)
	}
	if admins, _ := db.ListKeys(ctx, 0); len(admins) != 2 {
		t.Errorf("admin list: %d", len(admins))
	}
	if err := db.CreateKey(ctx, &aigrid.Key{Admin: true, TenantID: a.ID, Hash: "x"}); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Errorf("admin key with a tenant: %v", err)
	}
}

func TestProvidersPersist(t *testing.T) {
	ctx := context.Background()
	db, path := open(t)
	p := &aigrid.ProviderConfig{Name: "up1", Kind: aigrid.KindOpenAI, BaseURL: "http://127.0.0.1:9100/v1", Jurisdiction: "KE",
		Timeouts: aigrid.Timeouts{Idle: aigrid.Duration(5 * time.Second)},
		Offers:   []aigrid.Offer{{Model: "m", Serves: []string{"chat"}, Price: aigrid.Price{Input: 100_000, Output: 400_000}, MaxConcurrency: 3}}}
	if err := db.UpsertProvider(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Jurisdiction = "TZ"
	if err := db.UpsertProvider(ctx, p); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err := Open(path) // reopening applies no migration twice
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.FindProvider(ctx, "up1")
	if err != nil || got.Jurisdiction != "TZ" || got.Offers[0].Price.Output != 400_000 || time.Duration(got.Timeouts.Idle) != 5*time.Second {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
	if list, _ := db.ListProviders(ctx); len(list) != 1 {
		t.Errorf("list: %v", list)
	}
	if err := db.DeleteProvider(ctx, "up1"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteProvider(ctx, "up1"); aigrid.ErrorCode(err) != aigrid.ENotFound {
		t.Errorf("delete twice: %v", err)
	}
	if _, err := db.FindProvider(ctx, "up1"); aigrid.ErrorCode(err) != aigrid.ENotFound {
		t.Errorf("find deleted: %v", err)
	}
}

// TestConcurrentWriters checks that writers queue rather than fail with
// SQLITE_BUSY, while readers keep reading.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t)
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := 0; w < 8; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if err := db.UpsertTenant(ctx, &aigrid.Tenant{Name: fmt.Sprintf("t%d-%d", w, i%10)}); err != nil {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := db.ListTenants(ctx); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if list, _ := db.ListTenants(ctx); len(list) != 80 {
		t.Errorf("%d tenants, want 80", len(list))
	}
}

func TestServiceModelsAndBrownout(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t)
	if err := db.UpsertServiceModel(ctx, &aigrid.ServiceModel{Name: "chat", Fallback: "chat-small"}); err != nil {
		t.Fatal(err)
	}
	if err := db.UpsertServiceModel(ctx, &aigrid.ServiceModel{Name: "chat", Fallback: "chat-tiny"}); err != nil {
		t.Fatal(err)
	}
	if err := db.UpsertServiceModel(ctx, &aigrid.ServiceModel{Name: "x", Fallback: "x"}); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Errorf("own fallback: %v", err)
	}
	ms, err := db.ListServiceModels(ctx)
	if err != nil || len(ms) != 1 || ms[0].Fallback != "chat-tiny" {
		t.Errorf("list: %+v %v", ms, err)
	}
	if err := db.DeleteServiceModel(ctx, "chat"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteServiceModel(ctx, "chat"); aigrid.ErrorCode(err) != aigrid.ENotFound {
		t.Errorf("delete twice: %v", err)
	}

	tn := &aigrid.Tenant{Name: "a", Brownout: true}
	db.CreateTenant(ctx, tn)
	got, _ := db.FindTenantByName(ctx, "a")
	off := false
	if !got.Brownout {
		t.Error("brownout not stored")
	}
	got, _ = db.UpdateTenant(ctx, "a", aigrid.TenantUpdate{Brownout: &off})
	if got.Brownout {
		t.Error("brownout not updated")
	}
}
