package alerts

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"aigrid"
)

// memDocs is an aigrid.DocService in memory, with the contract of the
// SQLite one: ENotFound for a missing document, lists ordered by id.
type memDocs struct {
	mu   sync.Mutex
	docs map[docKey]aigrid.Doc
}

type docKey struct {
	pkg    string
	tenant int64
	id     string
}

func newMemDocs() *memDocs { return &memDocs{docs: map[docKey]aigrid.Doc{}} }

func (m *memDocs) PutDoc(_ context.Context, d *aigrid.Doc) error {
	d.Updated = time.Now()
	c := *d
	c.Body = slices.Clone(d.Body)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.docs[docKey{d.Package, d.TenantID, d.ID}] = c
	return nil
}

func (m *memDocs) GetDoc(_ context.Context, pkg string, tenant int64, id string) (*aigrid.Doc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.docs[docKey{pkg, tenant, id}]
	if !ok {
		return nil, aigrid.Errorf(aigrid.ENotFound, "no %s document %q", pkg, id)
	}
	return &d, nil
}

func (m *memDocs) ListDocs(_ context.Context, pkg string, tenant int64, prefix string) ([]*aigrid.Doc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*aigrid.Doc
	for _, d := range m.docs {
		if d.Package == pkg && d.TenantID == tenant && strings.HasPrefix(d.ID, prefix) {
			out = append(out, &d)
		}
	}
	slices.SortFunc(out, func(a, b *aigrid.Doc) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (m *memDocs) DeleteDoc(_ context.Context, pkg string, tenant int64, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.docs, docKey{pkg, tenant, id})
	return nil
}
