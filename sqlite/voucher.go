package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"aigrid"
)

// CreateVouchers stores minted vouchers with their transaction.
func (db *DB) CreateVouchers(ctx context.Context, vs []*aigrid.Voucher, t *aigrid.LedgerTx) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO vouchers (hash, batch, value, expires_at, created_at) VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, v := range vs {
			if _, err := ins.ExecContext(ctx, v.Hash, v.Batch, int64(v.Value), nullTime(v.ExpiresAt), toNanos(v.CreatedAt)); err != nil {
				return fmt.Errorf("sqlite: create voucher: %w", err)
			}
		}
		return insertTx(ctx, tx, t)
	})
}

// RedeemVoucher spends a voucher for a tenant, in one transaction with its
// ledger entries. The conditional UPDATE decides whether the voucher may be
// spent, so that of a redemption and a void (or two redemptions) of one
// code exactly one wins; only a refusal reads the voucher, to say why.
func (db *DB) RedeemVoucher(ctx context.Context, hash string, tenantID int64, at time.Time, t *aigrid.LedgerTx) (aigrid.Money, error) {
	var value aigrid.Money
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var v int64
		err := tx.QueryRowContext(ctx, `UPDATE vouchers SET redeemed_at = ?, redeemed_by = ?
			WHERE hash = ? AND redeemed_at IS NULL AND voided_at IS NULL AND (expires_at IS NULL OR expires_at > ?) RETURNING value`,
			toNanos(at), tenantID, hash, toNanos(at)).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return whyNotRedeemable(ctx, tx, hash)
		}
		if err != nil {
			return fmt.Errorf("sqlite: redeem voucher: %w", err)
		}
		value = aigrid.Money(v)
		t.Entries = []aigrid.Entry{{Account: aigrid.AccountVoucherFloat, Amount: -value}, {Account: aigrid.TenantAccount(tenantID), Amount: value}}
		return insertTx(ctx, tx, t)
	})
	return value, err
}

// whyNotRedeemable is the refusal of a voucher that cannot be redeemed.
func whyNotRedeemable(ctx context.Context, tx *sql.Tx, hash string) error {
	var expires, redeemed, voided sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT expires_at, redeemed_at, voided_at FROM vouchers WHERE hash = ?`, hash).Scan(&expires, &redeemed, &voided)
	refuse := func(code, msg string, on sql.NullInt64) error {
		return &aigrid.Error{Code: code, Param: "code", Message: msg + fromNanos(on.Int64).Format(time.DateOnly) + "."}
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return &aigrid.Error{Code: aigrid.ENotFound, Param: "code", Message: "No voucher has this code. Check it with the seller."}
	case err != nil:
		return fmt.Errorf("sqlite: find voucher: %w", err)
	case redeemed.Valid:
		return refuse(aigrid.EConflict, "This voucher was already redeemed on ", redeemed)
	case voided.Valid:
		return refuse(aigrid.EConflict, "This voucher was cancelled by the grid's operator on ", voided)
	case expires.Valid:
		return refuse(aigrid.EInvalid, "This voucher expired on ", expires)
	}
	return fmt.Errorf("sqlite: voucher %s is redeemable but was not redeemed", hash)
}

// VoidVouchers voids the vouchers of a batch, or of one hash, that are
// neither redeemed nor voided, with the transaction that takes their value
// out of the float. The write transaction holds SQLite's lock from its
// start, so the vouchers counted are those the UPDATE changes.
func (db *DB) VoidVouchers(ctx context.Context, batch, hash string, at time.Time, t *aigrid.LedgerTx) (aigrid.VoucherVoid, error) {
	var out aigrid.VoucherVoid
	if (batch == "") == (hash == "") {
		return out, fmt.Errorf("sqlite: void vouchers: give a batch or a hash, not both")
	}
	where, arg := "batch = ?", batch
	if hash != "" {
		where, arg = "hash = ?", hash
	}
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var n, left, value int64
		var b sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*), MIN(batch), COUNT(redeemed_at), COUNT(voided_at),
			COUNT(CASE WHEN redeemed_at IS NULL AND voided_at IS NULL THEN 1 END),
			COALESCE(SUM(CASE WHEN redeemed_at IS NULL AND voided_at IS NULL THEN value END), 0)
			FROM vouchers WHERE `+where, arg).Scan(&n, &b, &out.Redeemed, &out.AlreadyVoided, &left, &value)
		if err != nil {
			return fmt.Errorf("sqlite: find vouchers: %w", err)
		}
		switch {
		case n == 0 && hash != "":
			return &aigrid.Error{Code: aigrid.ENotFound, Param: "code", Message: "No voucher has this code."}
		case n == 0:
			return &aigrid.Error{Code: aigrid.ENotFound, Param: "batch", Message: fmt.Sprintf("There is no voucher batch %q (aigrid voucher list shows them).", batch)}
		case left == 0:
			out.Batch = b.String
			return nil
		}
		out.Batch = b.String
		t.Entries = []aigrid.Entry{{Account: aigrid.AccountVoucherFloat, Amount: -aigrid.Money(value)}, {Account: aigrid.AccountVoucherSales, Amount: aigrid.Money(value)}}
		if err := insertTx(ctx, tx, t); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE vouchers SET voided_at = ?, void_tx = ? WHERE `+where+` AND redeemed_at IS NULL AND voided_at IS NULL`,
			toNanos(at), t.ID, arg)
		if err != nil {
			return fmt.Errorf("sqlite: void vouchers: %w", err)
		}
		if changed, err := res.RowsAffected(); err != nil || changed != left {
			return fmt.Errorf("sqlite: void vouchers: %d changed of %d counted (%v)", changed, left, err)
		}
		out.Voided = aigrid.VoucherSum{Count: left, Value: aigrid.Money(value)}
		return nil
	})
	if err != nil {
		return aigrid.VoucherVoid{}, err
	}
	return out, nil
}

// VoucherBatches counts every batch's vouchers by state at time at.
func (db *DB) VoucherBatches(ctx context.Context, at time.Time) ([]aigrid.VoucherBatch, error) {
	// A voucher is in the first state that holds: redeemed, voided, expired, outstanding.
	const expired = `redeemed_at IS NULL AND voided_at IS NULL AND expires_at <= ?`
	rows, err := db.read.QueryContext(ctx, `SELECT batch, MIN(created_at), MAX(expires_at), MAX(value), COUNT(*), COALESCE(SUM(value), 0),
		COUNT(redeemed_at), COALESCE(SUM(CASE WHEN redeemed_at IS NOT NULL THEN value END), 0),
		COUNT(voided_at), COALESCE(SUM(CASE WHEN voided_at IS NOT NULL THEN value END), 0),
		COUNT(CASE WHEN `+expired+` THEN 1 END), COALESCE(SUM(CASE WHEN `+expired+` THEN value END), 0)
		FROM vouchers GROUP BY batch ORDER BY MIN(created_at) DESC, batch DESC`, toNanos(at), toNanos(at))
	if err != nil {
		return nil, fmt.Errorf("sqlite: voucher batches: %w", err)
	}
	defer rows.Close()
	var out []aigrid.VoucherBatch
	for rows.Next() {
		var b aigrid.VoucherBatch
		var minted int64
		var expires sql.NullInt64
		if err := rows.Scan(&b.Batch, &minted, &expires, &b.Value, &b.Minted.Count, &b.Minted.Value, &b.Redeemed.Count, &b.Redeemed.Value,
			&b.Voided.Count, &b.Voided.Value, &b.Expired.Count, &b.Expired.Value); err != nil {
			return nil, fmt.Errorf("sqlite: voucher batches: %w", err)
		}
		b.MintedAt, b.ExpiresAt = fromNanos(minted), timePtr(expires)
		b.Outstanding = aigrid.VoucherSum{Count: b.Minted.Count - b.Redeemed.Count - b.Voided.Count - b.Expired.Count,
			Value: b.Minted.Value - b.Redeemed.Value - b.Voided.Value - b.Expired.Value}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: voucher batches: %w", err)
	}
	return out, nil
}

// checkVoucherFloat compares the float's balance with the value of the
// vouchers neither redeemed nor voided, in one statement, so one snapshot.
func (db *DB) checkVoucherFloat(ctx context.Context) ([]string, error) {
	var float, open int64
	err := db.read.QueryRowContext(ctx, `SELECT (SELECT COALESCE(SUM(amount), 0) FROM ledger_entries WHERE account = ?),
		(SELECT COALESCE(SUM(value), 0) FROM vouchers WHERE redeemed_at IS NULL AND voided_at IS NULL)`, aigrid.AccountVoucherFloat).Scan(&float, &open)
	if err != nil {
		return nil, err
	}
	if float != open {
		return []string{fmt.Sprintf("account %s: balance %d, but the vouchers neither redeemed nor voided are worth %d", aigrid.AccountVoucherFloat, float, open)}, nil
	}
	return nil, nil
}
