package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"aigrid"
)

const keyColumns = `id, tenant_id, admin, tenant_admin, name, hint, hash, models, limits, expires_at, revoked_at, created_at`

func scanKey(row interface{ Scan(...any) error }) (*aigrid.Key, error) {
	var k aigrid.Key
	var tenant, expires, revoked sql.NullInt64
	var models, limits string
	var created int64
	if err := row.Scan(&k.ID, &tenant, &k.Admin, &k.TenantAdmin, &k.Name, &k.Hint, &k.Hash, &models, &limits, &expires, &revoked, &created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(limits), &k.Limits); err != nil {
		return nil, fmt.Errorf("sqlite: key %s: limits: %w", k.ID, err)
	}
	k.TenantID = tenant.Int64
	if err := json.Unmarshal([]byte(models), &k.Models); err != nil {
		return nil, fmt.Errorf("sqlite: key %s: models: %w", k.ID, err)
	}
	if len(k.Models) == 0 {
		k.Models = nil
	}
	k.ExpiresAt, k.RevokedAt, k.CreatedAt = timePtr(expires), timePtr(revoked), fromNanos(created)
	return &k, nil
}

// CreateKey stores a key. A key whose hash is stored already is left as it is
// and k is filled from it, unless it belongs to someone else.
func (db *DB) CreateKey(ctx context.Context, k *aigrid.Key) error {
	if k.Hash == "" {
		return aigrid.Errorf(aigrid.EInvalid, "a key needs its hash")
	}
	if k.Admin != (k.TenantID == 0) {
		return aigrid.Errorf(aigrid.EInvalid, "a key belongs either to a tenant or to the operator")
	}
	if k.ID == "" {
		k.ID = aigrid.NewID("key_")
	}
	models := "[]"
	if len(k.Models) > 0 {
		b, _ := json.Marshal(k.Models)
		models = string(b)
	}
	limits, _ := json.Marshal(k.Limits)
	tenant := sql.NullInt64{Int64: k.TenantID, Valid: k.TenantID != 0}
	return db.tx(ctx, func(tx *sql.Tx) error {
		existing, err := scanKey(tx.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE hash = ?`, k.Hash))
		switch {
		case err == nil:
			if existing.TenantID != k.TenantID || existing.Admin != k.Admin {
				return aigrid.Errorf(aigrid.EConflict, "this key is already in use by another tenant")
			}
			*k = *existing
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("sqlite: create key: %w", err)
		}
		k.CreatedAt = time.Now().UTC()
		_, err = tx.ExecContext(ctx, `INSERT INTO keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, tenant, k.Admin, k.TenantAdmin, k.Name, k.Hint, k.Hash, models, string(limits), nullTime(k.ExpiresAt), nullTime(k.RevokedAt), toNanos(k.CreatedAt))
		if err != nil {
			return fmt.Errorf("sqlite: create key: %w", err)
		}
		return nil
	})
}

func (db *DB) findKey(ctx context.Context, where string, arg any, what string) (*aigrid.Key, error) {
	k, err := scanKey(db.read.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, aigrid.Errorf(aigrid.ENotFound, "%s not found", what)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find key: %w", err)
	}
	return k, nil
}

// FindKeyByHash returns the key with this hash.
func (db *DB) FindKeyByHash(ctx context.Context, hash string) (*aigrid.Key, error) {
	return db.findKey(ctx, "hash = ?", hash, "key")
}

// FindKeyByID returns the key with this id.
func (db *DB) FindKeyByID(ctx context.Context, id string) (*aigrid.Key, error) {
	return db.findKey(ctx, "id = ?", id, fmt.Sprintf("key %q", id))
}

// ListKeys lists a tenant's keys, or with tenantID 0 the admin keys, oldest first.
func (db *DB) ListKeys(ctx context.Context, tenantID int64) ([]*aigrid.Key, error) {
	query := `SELECT ` + keyColumns + ` FROM keys WHERE tenant_id = ? ORDER BY created_at, id`
	args := []any{tenantID}
	if tenantID == 0 {
		query, args = `SELECT `+keyColumns+` FROM keys WHERE admin = 1 ORDER BY created_at, id`, nil
	}
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", err)
	}
	defer rows.Close()
	var keys []*aigrid.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list keys: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// RevokeKey revokes a key; revoking it again keeps the first time.
func (db *DB) RevokeKey(ctx context.Context, id string) (*aigrid.Key, error) {
	res, err := db.write.ExecContext(ctx, `UPDATE keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, toNanos(time.Now()), id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: revoke key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, aigrid.Errorf(aigrid.ENotFound, "key %q not found", id)
	}
	return db.FindKeyByID(ctx, id)
}

// CountAdminKeys counts the admin keys that are neither revoked nor expired.
func (db *DB) CountAdminKeys(ctx context.Context) (int, error) {
	var n int
	err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM keys WHERE admin = 1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`,
		toNanos(time.Now())).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: count admin keys: %w", err)
	}
	return n, nil
}
