package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"aigrid"
)

var _ aigrid.LedgerService = (*DB)(nil)

// snapshotEvery is how many entries past an account's last snapshot a
// balance read sums before it writes a new snapshot.
const snapshotEvery = 1000

// CommitTxs writes the transactions in one database transaction, with a few
// multi-row statements per group rather than a statement per row: the
// group commit's cost is mostly SQLite's per-statement work.
//
// Usage transactions are posted the way a sales journal posts to a general
// ledger: the calls of one tenant in one minute are posted together as one
// balanced ledger transaction whose entries sum theirs, and kept in one
// packed row beside it (see usage.go). Minutes are whole in every time
// zone, so a balance at a month's start in any zone counts exactly the
// calls before it.
func (db *DB) CommitTxs(ctx context.Context, txs []*aigrid.LedgerTx) ([]bool, error) {
	applied := make([]bool, len(txs))
	for _, t := range txs {
		if !t.Balanced() {
			return nil, fmt.Errorf("sqlite: commit ledger: transaction %s does not balance", t.Key)
		}
	}
	var calls, others []int
	for i, t := range txs {
		if t.Kind == aigrid.TxUsage && t.Usage != nil {
			calls = append(calls, i)
		} else {
			others = append(others, i)
		}
	}
	commit := func(lookup bool) error {
		return db.tx(ctx, func(tx *sql.Tx) error {
			if err := db.commitTxRows(ctx, tx, txs, others, applied); err != nil {
				return err
			}
			return db.commitUsage(ctx, tx, txs, calls, applied, lookup)
		})
	}
	err := commit(false)
	if errors.Is(err, errPostedBefore) {
		// Rolled back: written again, every call looked up by ID.
		clear(applied)
		for _, t := range txs {
			t.ID = 0
		}
		err = commit(true)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: commit ledger: %w", err)
	}
	return applied, nil
}

// commitTxRows writes the transactions txs[i] for i in which, each with its
// entries. Those whose key exists already (or comes twice in the group) are
// not applied: a replay changes nothing.
func (db *DB) commitTxRows(ctx context.Context, tx *sql.Tx, txs []*aigrid.LedgerTx, which []int, applied []bool) error {
	fresh := make([]int, 0, len(which))
	seen := make(map[string]bool, len(which))
	for _, i := range which {
		if !seen[txs[i].Key] {
			seen[txs[i].Key] = true
			fresh = append(fresh, i)
		}
	}
	ids := make(map[string]int64, len(fresh))
	err := db.insertRows(ctx, tx, &insertTxs, len(fresh),
		func(j int, args []any) []any {
			t := txs[fresh[j]]
			return append(args, t.Key, t.Kind, nullID(t.TenantID), toNanos(t.At), t.Memo, t.Actor)
		},
		func(rows *sql.Rows) error {
			var id int64
			var key string
			if err := rows.Scan(&id, &key); err != nil {
				return err
			}
			ids[key] = id
			return nil
		})
	if err != nil {
		return err
	}
	var entries []entryRow
	for _, i := range fresh {
		t := txs[i]
		id, ok := ids[t.Key]
		if !ok {
			continue
		}
		t.ID, applied[i] = id, true
		for _, e := range t.Entries {
			entries = append(entries, entryRow{id, e})
		}
	}
	err = db.insertRows(ctx, tx, &insertEntries, len(entries),
		func(j int, args []any) []any {
			return append(args, entries[j].txID, entries[j].Account, int64(entries[j].Amount))
		}, nil)
	return err
}

type entryRow struct {
	txID int64
	aigrid.Entry
}

// An insert is a statement that writes rows of width parameters: head,
// then "(?, ...), (?, ...)", then tail.
type insert struct {
	head  string
	width int
	tail  string
}

var (
	insertTxs     = insert{"INSERT INTO ledger_tx (key, kind, tenant_id, at, memo, actor) VALUES ", 6, " ON CONFLICT(key) DO NOTHING RETURNING id, key"}
	insertEntries = insert{"INSERT INTO ledger_entries (tx_id, account, amount) VALUES ", 3, ""}
)

// insertChunks are the row counts of the statements insertRows runs,
// largest first: a group of any size is written with few statements, whose
// texts are few enough to be prepared once, when the store opens, rather
// than parsed again for every group. No 256-row statements: prepared, they
// held 0.8 MiB of SQLite's memory for the life of the process (RssAnon of a
// fresh Open, 2,548-2,564 KiB against 1,716-1,740), and an apply for 1,000
// tenants ran as fast without them (go run ./bench/meter -gateway=false
// -tenants 1000: 58-61k settlements/s either way).
var insertChunks = []int{64, 16, 4, 1}

type chunkKey struct {
	insert *insert
	rows   int
}

// prepareInserts prepares every insert, and the rollup's upsert, in every
// chunk size, and the statements of the journal position.
func (db *DB) prepareInserts(ctx context.Context) error {
	db.inserts = map[chunkKey]*sql.Stmt{}
	for _, in := range []*insert{&insertTxs, &insertEntries, &insertPacks, &upsertSlots} {
		one := "(" + strings.Repeat("?, ", in.width-1) + "?)"
		for _, n := range insertChunks {
			text := in.head + strings.Repeat(one+", ", n-1) + one + in.tail
			st, err := db.write.PrepareContext(ctx, text)
			if err != nil {
				return fmt.Errorf("sqlite: prepare: %w", err)
			}
			db.inserts[chunkKey{in, n}] = st
		}
	}
	var err error
	if db.markRead, err = db.write.PrepareContext(ctx, markRead); err != nil {
		return fmt.Errorf("sqlite: prepare: %w", err)
	}
	if db.markWrite, err = db.write.PrepareContext(ctx, markWrite); err != nil {
		return fmt.Errorf("sqlite: prepare: %w", err)
	}
	return nil
}

// insertRows inserts n rows in chunks of the sizes in insertChunks. row
// appends the parameters of row j; scan, when set, reads the rows a
// RETURNING tail gives back.
func (db *DB) insertRows(ctx context.Context, tx *sql.Tx, in *insert, n int,
	row func(j int, args []any) []any, scan func(*sql.Rows) error) error {
	args := make([]any, 0, min(n, insertChunks[0])*in.width)
	for lo := 0; lo < n; {
		size := 1
		for _, c := range insertChunks {
			if c <= n-lo {
				size = c
				break
			}
		}
		stmt := tx.StmtContext(ctx, db.inserts[chunkKey{in, size}])
		args = args[:0]
		for j := lo; j < lo+size; j++ {
			args = row(j, args)
		}
		lo += size
		if scan == nil {
			if _, err := stmt.ExecContext(ctx, args...); err != nil {
				return err
			}
			continue
		}
		rows, err := stmt.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// AccountBalance sums an account's entries. For the live balance it starts
// from the latest snapshot, and leaves a new one when it summed many entries.
// A time outside what Unix nanoseconds count (a statement of 1677) is held
// at their ends, as the usage readers hold theirs, rather than wrapped round.
func (db *DB) AccountBalance(ctx context.Context, account string, before time.Time) (aigrid.Money, error) {
	if !before.IsZero() {
		var sum int64
		err := db.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e JOIN ledger_tx t ON t.id = e.tx_id
			WHERE e.account = ? AND t.at < ?`, account, boundNanos(before)).Scan(&sum)
		if err != nil {
			return 0, fmt.Errorf("sqlite: balance: %w", err)
		}
		return aigrid.Money(sum), nil
	}
	var snapTx, snapBalance int64
	err := db.read.QueryRowContext(ctx, `SELECT tx_id, balance FROM balance_snapshots WHERE account = ? ORDER BY tx_id DESC LIMIT 1`, account).Scan(&snapTx, &snapBalance)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("sqlite: balance snapshot: %w", err)
	}
	var sum, count, last int64
	err = db.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(amount), 0), COUNT(*), COALESCE(MAX(tx_id), 0) FROM ledger_entries WHERE account = ? AND tx_id > ?`,
		account, snapTx).Scan(&sum, &count, &last)
	if err != nil {
		return 0, fmt.Errorf("sqlite: balance: %w", err)
	}
	balance := snapBalance + sum
	if count >= snapshotEvery {
		if _, err := db.write.ExecContext(ctx, `INSERT OR IGNORE INTO balance_snapshots (account, tx_id, balance) VALUES (?, ?, ?)`, account, last, balance); err != nil {
			return 0, fmt.Errorf("sqlite: write balance snapshot: %w", err)
		}
	}
	return aigrid.Money(balance), nil
}

// ListTxs returns the non-usage transactions touching an account in [from, to).
func (db *DB) ListTxs(ctx context.Context, account string, from, to time.Time) ([]*aigrid.LedgerTx, error) {
	txs, err := db.queryTxs(ctx, `WHERE t.kind != 'usage' AND t.at >= ? AND t.at < ? AND t.id IN (SELECT tx_id FROM ledger_entries WHERE account = ?)
		ORDER BY t.at, t.id`, boundNanos(from), boundNanos(to), account)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list transactions: %w", err)
	}
	return txs, nil
}

// TxByKey returns the transaction written under key, with its entries.
func (db *DB) TxByKey(ctx context.Context, key string) (*aigrid.LedgerTx, error) {
	txs, err := db.queryTxs(ctx, `WHERE t.key = ? ORDER BY e.rowid`, key)
	if err != nil {
		return nil, fmt.Errorf("sqlite: transaction %s: %w", key, err)
	}
	if len(txs) == 0 {
		return nil, aigrid.Errorf(aigrid.ENotFound, "There is no transaction %s in the ledger.", key)
	}
	return txs[0], nil
}

// queryTxs reads the transactions that where (a WHERE clause over ledger_tx t
// and ledger_entries e, with its ORDER BY, which must keep a transaction's
// entries together) selects, each with its entries.
func (db *DB) queryTxs(ctx context.Context, where string, args ...any) ([]*aigrid.LedgerTx, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT t.id, t.key, t.kind, COALESCE(t.tenant_id, 0), t.at, t.memo, t.actor, e.account, e.amount
		FROM ledger_tx t JOIN ledger_entries e ON e.tx_id = t.id `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*aigrid.LedgerTx
	for rows.Next() {
		var t aigrid.LedgerTx
		var at, amount int64
		var e aigrid.Entry
		if err := rows.Scan(&t.ID, &t.Key, &t.Kind, &t.TenantID, &at, &t.Memo, &t.Actor, &e.Account, &amount); err != nil {
			return nil, err
		}
		e.Amount = aigrid.Money(amount)
		if n := len(out); n > 0 && out[n-1].ID == t.ID {
			out[n-1].Entries = append(out[n-1].Entries, e)
			continue
		}
		t.At, t.Entries = fromNanos(at), []aigrid.Entry{e}
		out = append(out, &t)
	}
	return out, rows.Err()
}

// CheckLedger reports transactions whose entries do not sum to zero, usage
// postings whose calls' charges differ from what they posted, and a voucher
// float that differs from the value of the vouchers still in it.
func (db *DB) CheckLedger(ctx context.Context) ([]string, error) {
	var bad []string
	rows, err := db.read.QueryContext(ctx, `SELECT t.key, COALESCE(SUM(e.amount), 0), COUNT(e.tx_id) FROM ledger_tx t LEFT JOIN ledger_entries e ON e.tx_id = t.id
		GROUP BY t.id HAVING COALESCE(SUM(e.amount), 0) != 0 OR COUNT(e.tx_id) = 0`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: check ledger: %w", err)
	}
	for rows.Next() {
		var key string
		var sum, n int64
		if err := rows.Scan(&key, &sum, &n); err != nil {
			rows.Close()
			return nil, err
		}
		bad = append(bad, fmt.Sprintf("transaction %s: %d entries summing to %d", key, n, sum))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: check ledger: %w", err)
	}
	packs, err := db.checkPacks(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: check ledger: %w", err)
	}
	float, err := db.checkVoucherFloat(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: check ledger: %w", err)
	}
	return append(append(bad, packs...), float...), nil
}

// GetAccount returns a tenant's account; ENotFound if it has none.
func (db *DB) GetAccount(ctx context.Context, tenantID int64) (*aigrid.Account, error) {
	a, err := scanAccount(db.read.QueryRowContext(ctx, `SELECT tenant_id, type, credit_limit, tariff, limits FROM accounts WHERE tenant_id = ?`, tenantID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, aigrid.Errorf(aigrid.ENotFound, "tenant %d has no account", tenantID)
	}
	return a, err
}

func scanAccount(row interface{ Scan(...any) error }) (*aigrid.Account, error) {
	var a aigrid.Account
	var limits string
	var credit int64
	if err := row.Scan(&a.TenantID, &a.Type, &credit, &a.Tariff, &limits); err != nil {
		return nil, err
	}
	a.CreditLimit = aigrid.Money(credit)
	if err := json.Unmarshal([]byte(limits), &a.Limits); err != nil {
		return nil, fmt.Errorf("sqlite: account %d: limits: %w", a.TenantID, err)
	}
	return &a, nil
}

// PutAccount creates or replaces a tenant's account.
func (db *DB) PutAccount(ctx context.Context, a *aigrid.Account) error {
	limits, _ := json.Marshal(a.Limits)
	_, err := db.write.ExecContext(ctx, `INSERT INTO accounts (tenant_id, type, credit_limit, tariff, limits) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(tenant_id) DO UPDATE SET type = excluded.type, credit_limit = excluded.credit_limit, tariff = excluded.tariff, limits = excluded.limits`,
		a.TenantID, string(a.Type), int64(a.CreditLimit), a.Tariff, string(limits))
	if err != nil {
		if strings.Contains(err.Error(), "FOREIGN KEY") {
			return aigrid.Errorf(aigrid.ENotFound, "tenant %d not found", a.TenantID)
		}
		return fmt.Errorf("sqlite: put account: %w", err)
	}
	return nil
}

// ListAccounts returns every account.
func (db *DB) ListAccounts(ctx context.Context) ([]*aigrid.Account, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT tenant_id, type, credit_limit, tariff, limits FROM accounts ORDER BY tenant_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list accounts: %w", err)
	}
	defer rows.Close()
	var out []*aigrid.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// PutTariff stores a tariff version, replacing the one of the same name and date.
func (db *DB) PutTariff(ctx context.Context, t *aigrid.Tariff) error {
	spec, _ := json.Marshal(t)
	_, err := db.write.ExecContext(ctx, `INSERT INTO tariffs (name, effective, spec) VALUES (?, ?, ?)
		ON CONFLICT(name, effective) DO UPDATE SET spec = excluded.spec`, t.Name, toNanos(t.Effective), string(spec))
	if err != nil {
		return fmt.Errorf("sqlite: put tariff: %w", err)
	}
	return nil
}

// ListTariffs returns every tariff version, by name and date.
func (db *DB) ListTariffs(ctx context.Context) ([]*aigrid.Tariff, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT spec FROM tariffs ORDER BY name, effective`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tariffs: %w", err)
	}
	defer rows.Close()
	var out []*aigrid.Tariff
	for rows.Next() {
		var spec string
		if err := rows.Scan(&spec); err != nil {
			return nil, err
		}
		var t aigrid.Tariff
		if err := json.Unmarshal([]byte(spec), &t); err != nil {
			return nil, fmt.Errorf("sqlite: tariff: %w", err)
		}
		out = append(out, &t)
	}
	return out, rows.Err()
}

// insertTx writes one transaction inside tx; a repeated key is a conflict.
func insertTx(ctx context.Context, tx *sql.Tx, t *aigrid.LedgerTx) error {
	if !t.Balanced() {
		return fmt.Errorf("sqlite: transaction %s does not balance", t.Key)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO ledger_tx (key, kind, tenant_id, at, memo, actor) VALUES (?, ?, ?, ?, ?, ?)`,
		t.Key, t.Kind, nullID(t.TenantID), toNanos(t.At), t.Memo, t.Actor)
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return aigrid.Errorf(aigrid.EConflict, "transaction %s is already recorded", t.Key)
		}
		return fmt.Errorf("sqlite: write transaction: %w", err)
	}
	id, _ := res.LastInsertId()
	t.ID = id
	for _, e := range t.Entries {
		if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_entries (tx_id, account, amount) VALUES (?, ?, ?)`, id, e.Account, int64(e.Amount)); err != nil {
			return fmt.Errorf("sqlite: write entry: %w", err)
		}
	}
	return nil
}
