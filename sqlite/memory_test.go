package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"testing"

	msqlite "modernc.org/sqlite"
)

// cacheUsed is the memory of one connection's page cache, in bytes.
func cacheUsed(t *testing.T, conn *sql.Conn) int {
	t.Helper()
	var used int
	err := conn.Raw(func(dc any) error {
		var err error
		used, _, err = dc.(msqlite.DBStatus).Status(msqlite.DBStatusCacheUsed, false)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return used
}

// TestCachesBounded writes and reads more than either cache may hold and
// checks that each connection's cache filled to its bound and no further.
func TestCachesBounded(t *testing.T) {
	db, _ := open(t)
	ctx := context.Background()
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE scratch (k BLOB PRIMARY KEY, v BLOB)`); err != nil {
		t.Fatal(err)
	}
	// 2,000 rows of 16-byte random keys and 600-byte values: about 1.2 MB,
	// over twice the writer's bound, inserted at random places as a
	// unique index is.
	k, v := make([]byte, 16), make([]byte, 600)
	for range 10 {
		err := db.tx(ctx, func(tx *sql.Tx) error {
			for range 200 {
				rand.Read(k)
				if _, err := tx.ExecContext(ctx, `INSERT INTO scratch VALUES (?, ?)`, k, v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The connections' caches are one pool (SQLite's pcache1, built with
	// SQLITE_ENABLE_MEMORY_MANAGEMENT), bounded by the sum of their
	// cache_size: a reader that has reached its own bound takes the pool's
	// least recently used pages, the writer's among them.
	conns := map[string]*sql.Conn{}
	for name, pool := range map[string]*sql.DB{"writer": db.write, "reader": db.read} {
		conn, err := pool.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns[name] = conn
	}
	// A few pages over a bound: SQLite may hold pinned pages past it.
	within := func(what string, used, kib int) {
		t.Helper()
		if bound := kib << 10; used < bound/2 || used > bound+bound/10 {
			t.Errorf("%s holds %d KiB of pages after 1.2 MB went through; want it filled to its bound of %d KiB", what, used>>10, kib)
		}
	}
	within("the writer's cache", cacheUsed(t, conns["writer"]), writeCacheKiB)
	var n, size int
	if err := conns["reader"].QueryRowContext(ctx, `SELECT count(*), sum(length(v)) FROM scratch`).Scan(&n, &size); err != nil {
		t.Fatal(err)
	}
	if n != 2000 || size != 2000*600 {
		t.Fatalf("read %d rows, %d bytes", n, size)
	}
	within("the two caches", cacheUsed(t, conns["writer"])+cacheUsed(t, conns["reader"]), writeCacheKiB+readCacheKiB)
}
