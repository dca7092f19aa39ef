package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// BackupPattern names the files Backup makes in a directory while a copy is
// being made or sent; one left by a crash can be removed.
const BackupPattern = "aigrid-backup-*.tmp"

// Backup writes a copy of the whole database, as it stood at one moment,
// to a new file in dir, and returns the file's path; the caller removes it.
// It is SQLite's VACUUM INTO, run on a read connection: WAL mode lets the
// writer go on meanwhile, and the copy is compact (no free pages, no WAL).
func (db *DB) Backup(ctx context.Context, dir string) (string, error) {
	f, err := os.CreateTemp(dir, BackupPattern)
	if err != nil {
		return "", fmt.Errorf("sqlite: backup: %w", err)
	}
	path := f.Name()
	f.Close()
	// VACUUM INTO writes only into a file that is missing or empty.
	if _, err := db.read.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("sqlite: backup: %w", err)
	}
	return path, nil
}

// BackupInfo is what a backup file holds, as Inspect read it.
type BackupInfo struct {
	// Schema is the store's schema version.
	Schema int `json:"schema"`
	// Currency is the ledger's currency; empty when the grid never metered.
	Currency string `json:"currency,omitempty"`
	Tenants  int64  `json:"tenants"`
	// Transactions counts the ledger's transactions (a minute of a
	// tenant's calls is one); Last is the time of the latest transaction or
	// call (a usage transaction is dated by its minute), zero when there is
	// none.
	Transactions int64     `json:"transactions"`
	Last         time.Time `json:"last_transaction"`
	// Calls counts the calls in the ledger.
	Calls int64 `json:"calls"`
}

// Inspect checks that the file at path is a whole aigrid store that this
// aigrid can open (SQLite's integrity check, every page and index read),
// without changing it, and says what it holds.
func Inspect(ctx context.Context, path string) (*BackupInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a file", path)
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	notStore := func(err error) error {
		return fmt.Errorf("%s is not an aigrid store, or is damaged: %v", path, err)
	}
	var info BackupInfo
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&info.Schema); err != nil {
		return nil, notStore(err)
	}
	if info.Schema == 0 {
		return nil, notStore(errors.New("it has no aigrid schema"))
	}
	if info.Schema > len(migrations) {
		return nil, fmt.Errorf("%s was made by a newer aigrid (schema version %d; this one knows %d): restore it with that version or a later one", path, info.Schema, len(migrations))
	}
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return nil, notStore(err)
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return nil, notStore(err)
		}
		if line != "ok" && len(problems) < 5 {
			problems = append(problems, line)
		}
	}
	if err := rows.Close(); err != nil {
		return nil, notStore(err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s is damaged: SQLite's integrity check found: %s", path, strings.Join(problems, "; "))
	}
	var currency sql.NullString
	var last sql.NullInt64
	err = db.QueryRowContext(ctx, `SELECT (SELECT body FROM docs WHERE package = 'grid' AND tenant_id = 0 AND id = 'currency'),
		(SELECT count(*) FROM tenants), (SELECT count(*) FROM ledger_tx),
		nullif(max(coalesce((SELECT max(at) FROM ledger_tx), 0), coalesce((SELECT max(last_at) FROM usage_packs), 0)), 0),
		(SELECT coalesce(sum(calls), 0) FROM usage_packs)`).
		Scan(&currency, &info.Tenants, &info.Transactions, &last, &info.Calls)
	if err != nil {
		return nil, notStore(err)
	}
	if currency.Valid {
		if err := json.Unmarshal([]byte(currency.String), &info.Currency); err != nil {
			return nil, notStore(fmt.Errorf("its currency %q: %v", currency.String, err))
		}
	}
	if last.Valid {
		info.Last = fromNanos(last.Int64)
	}
	return &info, nil
}
