package aigrid

import (
	"context"
	"encoding/json"
	"time"
)

// Doc is one piece of a package's state: a JSON document named by the
// package, the tenant it belongs to (0 for the operator) and an id that the
// package chooses. Packages keep small state (a detector per series, an
// alert, a week of case counts) and need no schema of their own.
type Doc struct {
	Package  string          `json:"package"`
	TenantID int64           `json:"tenant_id"`
	ID       string          `json:"id"`
	Body     json.RawMessage `json:"body"`
	Updated  time.Time       `json:"updated"`
}

// DocService keeps packages' documents.
type DocService interface {
	// PutDoc inserts the document or replaces the one with the same package,
	// tenant and id; it sets Updated.
	PutDoc(ctx context.Context, d *Doc) error
	// GetDoc returns the document, or an ENotFound error.
	GetDoc(ctx context.Context, pkg string, tenantID int64, id string) (*Doc, error)
	// ListDocs returns the tenant's documents of the package whose id starts
	// with prefix, ordered by id.
	ListDocs(ctx context.Context, pkg string, tenantID int64, prefix string) ([]*Doc, error)
	// DeleteDoc removes the document; removing a missing one is not an error.
	DeleteDoc(ctx context.Context, pkg string, tenantID int64, id string) error
}
