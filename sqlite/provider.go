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

// Providers are stored whole, as JSON: they are read at start and when the
// operator changes one, never on the request path.

// UpsertProvider stores a provider's configuration under its name.
func (db *DB) UpsertProvider(ctx context.Context, p *aigrid.ProviderConfig) error {
	p.UpdatedAt = time.Now().UTC()
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("sqlite: encode provider: %w", err)
	}
	_, err = db.write.ExecContext(ctx, `INSERT INTO providers (name, config, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at`,
		p.Name, string(b), toNanos(p.UpdatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: upsert provider: %w", err)
	}
	return nil
}

func decodeProvider(config string) (*aigrid.ProviderConfig, error) {
	var p aigrid.ProviderConfig
	if err := json.Unmarshal([]byte(config), &p); err != nil {
		return nil, fmt.Errorf("sqlite: decode provider: %w", err)
	}
	return &p, nil
}

// FindProvider returns the provider with this name.
func (db *DB) FindProvider(ctx context.Context, name string) (*aigrid.ProviderConfig, error) {
	var config string
	err := db.read.QueryRowContext(ctx, `SELECT config FROM providers WHERE name = ?`, name).Scan(&config)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, aigrid.Errorf(aigrid.ENotFound, "provider %q not found", name)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find provider: %w", err)
	}
	return decodeProvider(config)
}

// ListProviders lists every provider by name.
func (db *DB) ListProviders(ctx context.Context) ([]*aigrid.ProviderConfig, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT config FROM providers ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list providers: %w", err)
	}
	defer rows.Close()
	var ps []*aigrid.ProviderConfig
	for rows.Next() {
		var config string
		if err := rows.Scan(&config); err != nil {
			return nil, fmt.Errorf("sqlite: list providers: %w", err)
		}
		p, err := decodeProvider(config)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, rows.Err()
}

// DeleteProvider removes a provider.
func (db *DB) DeleteProvider(ctx context.Context, name string) error {
	res, err := db.write.ExecContext(ctx, `DELETE FROM providers WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("sqlite: delete provider: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return aigrid.Errorf(aigrid.ENotFound, "provider %q not found", name)
	}
	return nil
}
