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

// PutDoc inserts or replaces a package's document.
func (db *DB) PutDoc(ctx context.Context, d *aigrid.Doc) error {
	if d.Package == "" || d.ID == "" {
		return aigrid.Errorf(aigrid.EInvalid, "a document needs a package and an id")
	}
	if !json.Valid(d.Body) {
		return aigrid.Errorf(aigrid.EInvalid, "document %s/%s: body is not JSON", d.Package, d.ID)
	}
	d.Updated = time.Now().UTC()
	_, err := db.write.ExecContext(ctx, `INSERT INTO docs (package, tenant_id, id, body, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (package, tenant_id, id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at`,
		d.Package, d.TenantID, d.ID, string(d.Body), toNanos(d.Updated))
	if err != nil {
		return fmt.Errorf("sqlite: put document %s/%s: %w", d.Package, d.ID, err)
	}
	return nil
}

// GetDoc returns one document or an ENotFound error.
func (db *DB) GetDoc(ctx context.Context, pkg string, tenantID int64, id string) (*aigrid.Doc, error) {
	d := &aigrid.Doc{Package: pkg, TenantID: tenantID, ID: id}
	var body string
	var updated int64
	err := db.read.QueryRowContext(ctx, `SELECT body, updated_at FROM docs WHERE package = ? AND tenant_id = ? AND id = ?`,
		pkg, tenantID, id).Scan(&body, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, aigrid.Errorf(aigrid.ENotFound, "no %s document %q", pkg, id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get document %s/%s: %w", pkg, id, err)
	}
	d.Body, d.Updated = []byte(body), fromNanos(updated)
	return d, nil
}

// ListDocs returns the tenant's documents of a package whose id starts with prefix.
func (db *DB) ListDocs(ctx context.Context, pkg string, tenantID int64, prefix string) ([]*aigrid.Doc, error) {
	end := prefixEnd(prefix)
	// A range on the primary key rather than LIKE, which would read '%' and '_' in ids as patterns.
	rows, err := db.read.QueryContext(ctx, `SELECT id, body, updated_at FROM docs
		WHERE package = ? AND tenant_id = ? AND id >= ? AND (? = '' OR id < ?) ORDER BY id`,
		pkg, tenantID, prefix, end, end)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list documents %s: %w", pkg, err)
	}
	defer rows.Close()
	var docs []*aigrid.Doc
	for rows.Next() {
		d := &aigrid.Doc{Package: pkg, TenantID: tenantID}
		var body string
		var updated int64
		if err := rows.Scan(&d.ID, &body, &updated); err != nil {
			return nil, fmt.Errorf("sqlite: list documents %s: %w", pkg, err)
		}
		d.Body, d.Updated = []byte(body), fromNanos(updated)
		docs = append(docs, d)
	}
	return docs, rows.Err()
}

// DeleteDoc removes a document if it exists.
func (db *DB) DeleteDoc(ctx context.Context, pkg string, tenantID int64, id string) error {
	if _, err := db.write.ExecContext(ctx, `DELETE FROM docs WHERE package = ? AND tenant_id = ? AND id = ?`, pkg, tenantID, id); err != nil {
		return fmt.Errorf("sqlite: delete document %s/%s: %w", pkg, id, err)
	}
	return nil
}

// prefixEnd is the least string greater than every string with the prefix
// (the prefix with its last byte below 0xff incremented), or "" for no bound.
func prefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}
