package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"aigrid"
)

func TestDocs(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "grid.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	put := func(tenant int64, id, body string) {
		t.Helper()
		if err := db.PutDoc(ctx, &aigrid.Doc{Package: "anomaly", TenantID: tenant, ID: id, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	put(1, "series/a", `{"n":1}`)
	put(1, "series/b", `{"n":2}`)
	put(1, "series%", `{"n":3}`)
	put(2, "series/a", `{"n":4}`)
	put(1, "series/a", `{"n":5}`) // replaces

	d, err := db.GetDoc(ctx, "anomaly", 1, "series/a")
	if err != nil || string(d.Body) != `{"n":5}` || d.Updated.IsZero() {
		t.Fatalf("GetDoc = %+v, %v", d, err)
	}
	if _, err := db.GetDoc(ctx, "anomaly", 3, "series/a"); aigrid.ErrorCode(err) != aigrid.ENotFound {
		t.Fatalf("missing doc: %v", err)
	}
	docs, err := db.ListDocs(ctx, "anomaly", 1, "series/")
	if err != nil || len(docs) != 2 || docs[0].ID != "series/a" || docs[1].ID != "series/b" {
		t.Fatalf("ListDocs(series/) = %v, %v", docs, err)
	}
	if all, _ := db.ListDocs(ctx, "anomaly", 1, ""); len(all) != 3 {
		t.Fatalf("ListDocs('') = %d docs, want 3", len(all))
	}
	if err := db.PutDoc(ctx, &aigrid.Doc{Package: "anomaly", TenantID: 1, ID: "x", Body: []byte("{")}); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Fatalf("bad JSON: %v", err)
	}
	if err := db.DeleteDoc(ctx, "anomaly", 1, "series/b"); err != nil {
		t.Fatal(err)
	}
	if docs, _ := db.ListDocs(ctx, "anomaly", 1, "series/"); len(docs) != 1 {
		t.Fatalf("after delete: %d docs", len(docs))
	}
}

func TestPrefixEnd(t *testing.T) {
	for in, want := range map[string]string{"": "", "a": "b", "a\xff": "b", "\xff\xff": ""} {
		if got := prefixEnd(in); got != want {
			t.Errorf("prefixEnd(%q) = %q, want %q", in, got, want)
		}
	}
}
