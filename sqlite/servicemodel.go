package sqlite

import (
	"context"
	"fmt"

	"aigrid"
)

// UpsertServiceModel stores a service model's settings under its name.
func (db *DB) UpsertServiceModel(ctx context.Context, m *aigrid.ServiceModel) error {
	if err := m.Validate(); err != nil {
		return err
	}
	_, err := db.write.ExecContext(ctx, `INSERT INTO service_models (name, fallback) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET fallback = excluded.fallback`, m.Name, m.Fallback)
	if err != nil {
		return fmt.Errorf("sqlite: upsert service model: %w", err)
	}
	return nil
}

// ListServiceModels lists the service models with settings, by name.
func (db *DB) ListServiceModels(ctx context.Context) ([]*aigrid.ServiceModel, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT name, fallback FROM service_models ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list service models: %w", err)
	}
	defer rows.Close()
	var ms []*aigrid.ServiceModel
	for rows.Next() {
		var m aigrid.ServiceModel
		if err := rows.Scan(&m.Name, &m.Fallback); err != nil {
			return nil, fmt.Errorf("sqlite: list service models: %w", err)
		}
		ms = append(ms, &m)
	}
	return ms, rows.Err()
}

// DeleteServiceModel removes a service model's settings.
func (db *DB) DeleteServiceModel(ctx context.Context, name string) error {
	res, err := db.write.ExecContext(ctx, `DELETE FROM service_models WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("sqlite: delete service model: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return aigrid.Errorf(aigrid.ENotFound, "service model %q not found", name)
	}
	return nil
}
