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

const tenantColumns = `id, name, class, residency, no_retention, brownout, disabled, created_at, updated_at`

func scanTenant(row interface{ Scan(...any) error }) (*aigrid.Tenant, error) {
	var t aigrid.Tenant
	var residency string
	var created, updated int64
	if err := row.Scan(&t.ID, &t.Name, &t.Class, &residency, &t.NoRetention, &t.Brownout, &t.Disabled, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(residency), &t.Residency); err != nil {
		return nil, fmt.Errorf("sqlite: tenant %q: residency: %w", t.Name, err)
	}
	if len(t.Residency) == 0 {
		t.Residency = nil
	}
	t.CreatedAt, t.UpdatedAt = fromNanos(created), fromNanos(updated)
	return &t, nil
}

func residencyJSON(r []string) string {
	if r == nil {
		r = []string{}
	}
	b, _ := json.Marshal(r)
	return string(b)
}

// CreateTenant creates a tenant; EConflict if the name is taken.
func (db *DB) CreateTenant(ctx context.Context, t *aigrid.Tenant) error {
	if err := t.Validate(); err != nil {
		return err
	}
	now := time.Now().UTC()
	err := db.write.QueryRowContext(ctx, `INSERT INTO tenants (name, class, residency, no_retention, brownout, disabled, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		t.Name, t.Class, residencyJSON(t.Residency), t.NoRetention, t.Brownout, t.Disabled, toNanos(now), toNanos(now)).Scan(&t.ID)
	if isUniqueViolation(err) {
		return aigrid.Errorf(aigrid.EConflict, "tenant %q already exists", t.Name)
	} else if err != nil {
		return fmt.Errorf("sqlite: create tenant: %w", err)
	}
	t.CreatedAt, t.UpdatedAt = now, now
	return nil
}

// UpsertTenant creates the tenant or updates the one of the same name.
func (db *DB) UpsertTenant(ctx context.Context, t *aigrid.Tenant) error {
	if err := t.Validate(); err != nil {
		return err
	}
	now := toNanos(time.Now())
	var created, updated int64
	err := db.write.QueryRowContext(ctx, `INSERT INTO tenants (name, class, residency, no_retention, brownout, disabled, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET class = excluded.class, residency = excluded.residency,
			no_retention = excluded.no_retention, brownout = excluded.brownout, disabled = excluded.disabled, updated_at = excluded.updated_at
		RETURNING id, created_at, updated_at`,
		t.Name, t.Class, residencyJSON(t.Residency), t.NoRetention, t.Brownout, t.Disabled, now, now).Scan(&t.ID, &created, &updated)
	if err != nil {
		return fmt.Errorf("sqlite: upsert tenant: %w", err)
	}
	t.CreatedAt, t.UpdatedAt = fromNanos(created), fromNanos(updated)
	return nil
}

// FindTenantByID returns the tenant with this id.
func (db *DB) FindTenantByID(ctx context.Context, id int64) (*aigrid.Tenant, error) {
	t, err := scanTenant(db.read.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, aigrid.Errorf(aigrid.ENotFound, "tenant %d not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find tenant: %w", err)
	}
	return t, nil
}

// FindTenantByName returns the tenant with this name.
func (db *DB) FindTenantByName(ctx context.Context, name string) (*aigrid.Tenant, error) {
	return db.findTenantByName(ctx, db.read, name)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (db *DB) findTenantByName(ctx context.Context, q queryer, name string) (*aigrid.Tenant, error) {
	t, err := scanTenant(q.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, aigrid.Errorf(aigrid.ENotFound, "tenant %q not found", name)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find tenant: %w", err)
	}
	return t, nil
}

// ListTenants lists every tenant by name.
func (db *DB) ListTenants(ctx context.Context) ([]*aigrid.Tenant, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+tenantColumns+` FROM tenants ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tenants: %w", err)
	}
	defer rows.Close()
	var ts []*aigrid.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list tenants: %w", err)
		}
		ts = append(ts, t)
	}
	return ts, rows.Err()
}

// UpdateTenant changes the fields of upd that are set.
func (db *DB) UpdateTenant(ctx context.Context, name string, upd aigrid.TenantUpdate) (*aigrid.Tenant, error) {
	var t *aigrid.Tenant
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if t, err = db.findTenantByName(ctx, tx, name); err != nil {
			return err
		}
		if upd.Class != nil {
			t.Class = *upd.Class
		}
		if upd.Residency != nil {
			t.Residency = *upd.Residency
		}
		if upd.NoRetention != nil {
			t.NoRetention = *upd.NoRetention
		}
		if upd.Brownout != nil {
			t.Brownout = *upd.Brownout
		}
		if upd.Disabled != nil {
			t.Disabled = *upd.Disabled
		}
		if err := t.Validate(); err != nil {
			return err
		}
		t.UpdatedAt = time.Now().UTC()
		_, err = tx.ExecContext(ctx, `UPDATE tenants SET class = ?, residency = ?, no_retention = ?, brownout = ?, disabled = ?, updated_at = ? WHERE id = ?`,
			t.Class, residencyJSON(t.Residency), t.NoRetention, t.Brownout, t.Disabled, toNanos(t.UpdatedAt), t.ID)
		return err
	})
	if err != nil {
		if aigrid.ErrorCode(err) != aigrid.EInternal {
			return nil, err
		}
		return nil, fmt.Errorf("sqlite: update tenant: %w", err)
	}
	return t, nil
}

func isUniqueViolation(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}
