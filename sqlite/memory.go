package sqlite

import "fmt"

// Page caches sized to what each connection serves.
//
// The connections' caches are one pool (SQLite's pcache1, built with
// SQLITE_ENABLE_MEMORY_MANAGEMENT) bounded by the sum of their cache_size:
// at its own bound a connection takes the pool's least recently used page,
// whichever connection held it. With SQLite's default in every connection,
// the writer and eight readers could hold 18 MB of pages.
//
// What SQLite frees does not leave the resident set: the driver's allocator
// (modernc.org/memory, under modernc.org/libc) keeps up to 4 MiB of emptied
// 64 KiB regions per size class committed for reuse, and libc offers no trim.
// A cache that shrinks (PRAGMA shrink_memory), a connection that closes, and
// SQLite's soft heap limit (inert: the driver is built without memory
// statistics) therefore leave the process as large as the caches' high-water
// mark. cache_size is the bound that holds. Each 4 KiB page with its headers
// takes an 8 KiB slot, so SQLite's default cache of 2,000 KiB costs about
// 5 MiB once full.
const (
	// writeCacheKiB bounds the writer's cache. The writer appends (usage
	// packs, ledger rows, the rollup's current slots): what it reads again
	// is the B-trees' inner pages and right edges, a few dozen pages. With
	// the default, it filled with pages written once and never read again.
	writeCacheKiB = 512
	// readCacheKiB bounds each reader's cache. Readers look keys and
	// tenants up by index, and read a statement's period once; the
	// operating system's file cache holds the rest of the file.
	readCacheKiB = 256
)

// cacheSize is the DSN parameter that sets a connection's page cache to
// kib KiB (a negative cache_size is in KiB, a positive one in pages).
func cacheSize(kib int) string { return fmt.Sprintf("&_pragma=cache_size(-%d)", kib) }
