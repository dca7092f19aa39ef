// Package sqlite is the embedded default store of aigrid: tenants, keys and
// providers in one SQLite file, through the pure-Go modernc.org/sqlite driver
// (no cgo).
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite"

	"aigrid"
)

var _ aigrid.Store = (*DB)(nil)

// DB is the SQLite store. Writes go through one connection, so writers queue in
// Go rather than fail with SQLITE_BUSY; reads use a pool, which WAL mode lets
// run beside the writer.
type DB struct {
	write *sql.DB
	read  *sql.DB
	// inserts are the ledger's multi-row inserts, prepared on the write
	// connection (see insertRows).
	inserts map[chunkKey]*sql.Stmt
	// markRead and markWrite read and move the journal position applied,
	// once an apply, prepared on the write connection.
	markRead, markWrite *sql.Stmt
}

// Open opens or creates the database file at path and brings its schema up to date.
func Open(path string) (*DB, error) {
	// synchronous=FULL: a committed transaction survives a power cut, not just a crash.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_pragma=synchronous(FULL)&_txlock=immediate"
	write, err := sql.Open("sqlite", dsn+cacheSize(writeCacheKiB))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	read, err := sql.Open("sqlite", dsn+cacheSize(readCacheKiB))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	read.SetMaxOpenConns(8)
	db := &DB{write: write, read: read}
	if err := db.migrate(context.Background()); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.prepareInserts(context.Background()); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	for _, st := range db.inserts {
		st.Close()
	}
	for _, st := range []*sql.Stmt{db.markRead, db.markWrite} {
		if st != nil {
			st.Close()
		}
	}
	rerr := db.read.Close()
	if err := db.write.Close(); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return rerr
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	return db.read.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// migrations bring the schema from version i to i+1; the database's
// user_version records how many have been applied.
var migrations = []string{
	`CREATE TABLE tenants (
		id INTEGER PRIMARY KEY,
		name TEXT NOT NULL UNIQUE,
		class TEXT NOT NULL,
		residency TEXT NOT NULL DEFAULT '[]',
		no_retention INTEGER NOT NULL DEFAULT 0,
		disabled INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE TABLE keys (
		id TEXT PRIMARY KEY,
		tenant_id INTEGER REFERENCES tenants(id),
		admin INTEGER NOT NULL DEFAULT 0,
		name TEXT NOT NULL DEFAULT '',
		hint TEXT NOT NULL,
		hash TEXT NOT NULL UNIQUE,
		models TEXT NOT NULL DEFAULT '[]',
		expires_at INTEGER,
		revoked_at INTEGER,
		created_at INTEGER NOT NULL
	);
	CREATE INDEX keys_tenant ON keys(tenant_id, created_at);
	CREATE TABLE providers (
		name TEXT PRIMARY KEY,
		config TEXT NOT NULL,
		updated_at INTEGER NOT NULL
	);`,
	`ALTER TABLE tenants ADD COLUMN brownout INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE service_models (
		name TEXT PRIMARY KEY,
		fallback TEXT NOT NULL DEFAULT ''
	);`,
	// The meter: accounts, tariff versions, the double-entry ledger with
	// balance snapshots, metered usage and vouchers. Times are Unix nanoseconds.
	`ALTER TABLE keys ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
	CREATE TABLE accounts (
		tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
		type TEXT NOT NULL DEFAULT '',
		credit_limit INTEGER NOT NULL DEFAULT 0,
		tariff TEXT NOT NULL DEFAULT '',
		limits TEXT NOT NULL DEFAULT '{}'
	);
	CREATE TABLE tariffs (
		name TEXT NOT NULL,
		effective INTEGER NOT NULL,
		spec TEXT NOT NULL,
		PRIMARY KEY (name, effective)
	);
	CREATE TABLE ledger_tx (
		id INTEGER PRIMARY KEY,
		key TEXT NOT NULL UNIQUE,
		kind TEXT NOT NULL,
		tenant_id INTEGER,
		at INTEGER NOT NULL,
		memo TEXT NOT NULL DEFAULT '',
		actor TEXT NOT NULL DEFAULT ''
	);
	CREATE TABLE ledger_entries (
		tx_id INTEGER NOT NULL REFERENCES ledger_tx(id),
		account TEXT NOT NULL,
		amount INTEGER NOT NULL
	);
	CREATE INDEX ledger_entries_account ON ledger_entries(account, tx_id);
	CREATE INDEX ledger_entries_tx ON ledger_entries(tx_id);
	CREATE TABLE balance_snapshots (
		account TEXT NOT NULL,
		tx_id INTEGER NOT NULL,
		balance INTEGER NOT NULL,
		PRIMARY KEY (account, tx_id)
	);
	CREATE TABLE usage (
		id TEXT PRIMARY KEY,
		tx_id INTEGER NOT NULL REFERENCES ledger_tx(id),
		tenant_id INTEGER NOT NULL,
		key_id TEXT NOT NULL DEFAULT '',
		at INTEGER NOT NULL,
		service TEXT NOT NULL,
		provider TEXT NOT NULL,
		model TEXT NOT NULL,
		prompt_tokens INTEGER NOT NULL,
		completion_tokens INTEGER NOT NULL,
		charge INTEGER NOT NULL,
		blocks TEXT NOT NULL,
		off_peak INTEGER NOT NULL DEFAULT 0,
		cost INTEGER NOT NULL DEFAULT 0,
		estimated INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX usage_tenant_at ON usage(tenant_id, at);
	CREATE INDEX usage_at ON usage(at);
	CREATE TABLE vouchers (
		hash TEXT PRIMARY KEY,
		batch TEXT NOT NULL,
		value INTEGER NOT NULL,
		expires_at INTEGER,
		created_at INTEGER NOT NULL,
		redeemed_at INTEGER,
		redeemed_by INTEGER
	);
	CREATE INDEX vouchers_batch ON vouchers(batch);`,
	// Packages' state: JSON documents by package, tenant and id.
	`CREATE TABLE docs (
		package TEXT NOT NULL,
		tenant_id INTEGER NOT NULL,
		id TEXT NOT NULL,
		body TEXT NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (package, tenant_id, id)
	) WITHOUT ROWID;`,
	`ALTER TABLE keys ADD COLUMN tenant_admin INTEGER NOT NULL DEFAULT 0;`,
	// Every call writes a usage row: one index fewer to update per call.
	// Revenue reads the period through usage_tenant_at, tenant by tenant.
	`DROP INDEX usage_at;`,
	// Calls are packed, a usage posting's calls a row (see usage.go), and
	// the ledger records how far it has applied the meter's journal: its
	// one row is missing while that is unknown. packUsageRows moves the
	// usage rows into packs.
	`CREATE TABLE usage_packs (
		tx_id INTEGER PRIMARY KEY REFERENCES ledger_tx(id),
		tenant_id INTEGER NOT NULL,
		first_at INTEGER NOT NULL,
		last_at INTEGER NOT NULL,
		calls INTEGER NOT NULL,
		tokens INTEGER NOT NULL,
		charge INTEGER NOT NULL,
		body BLOB NOT NULL
	);
	CREATE INDEX usage_packs_tenant_at ON usage_packs(tenant_id, first_at);
	CREATE TABLE journal_applied (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		segment INTEGER NOT NULL,
		byte_offset INTEGER NOT NULL
	);`,
	// The rollup: a tenant's usage summed by 15-minute slot, service model,
	// provider and block (see usage.go), so that a month is read in slots,
	// not calls. rollUpPacks sums the packs written before it.
	`CREATE TABLE usage_slots (
		tenant_id INTEGER NOT NULL,
		slot INTEGER NOT NULL,
		service TEXT NOT NULL,
		provider TEXT NOT NULL,
		block INTEGER NOT NULL,
		lines INTEGER NOT NULL,
		input INTEGER NOT NULL,
		output INTEGER NOT NULL,
		amount INTEGER NOT NULL,
		exact INTEGER NOT NULL,
		calls INTEGER NOT NULL,
		tokens INTEGER NOT NULL,
		charge INTEGER NOT NULL,
		cost INTEGER NOT NULL,
		PRIMARY KEY (tenant_id, slot, service, provider, block)
	) WITHOUT ROWID;`,
	// Vouchers the operator voided (cancelled) before they were redeemed,
	// and the ledger transaction that took their value out of the float.
	`ALTER TABLE vouchers ADD COLUMN voided_at INTEGER;
	ALTER TABLE vouchers ADD COLUMN void_tx INTEGER REFERENCES ledger_tx(id);`,
}

// migrationSteps do, in Go, what SQL alone cannot: each runs after the
// migration to its schema version, in the same transaction.
var migrationSteps = map[int]func(context.Context, *sql.Tx) error{
	7: packUsageRows,
	8: rollUpPacks,
}

func (db *DB) migrate(ctx context.Context) error {
	var version int
	if err := db.write.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("sqlite: read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("sqlite: the database has schema version %d, newer than this aigrid knows (%d): upgrade aigrid", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		err := db.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return err
			}
			if step := migrationSteps[v+1]; step != nil {
				if err := step(ctx, tx); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlite: migrate to schema version %d: %w", v+1, err)
		}
	}
	return nil
}

// tx runs fn in a write transaction.
func (db *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Times are stored as Unix nanoseconds, UTC.
func toNanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func nullTime(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func timePtr(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromNanos(n.Int64)
	return &t
}
