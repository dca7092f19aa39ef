package api

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"time"

	"aigrid"
)

// keyCacheTTL bounds how long a key or tenant read from the store is trusted.
// Changes made through this server's admin API take effect at once; the TTL
// only matters for changes made elsewhere (another node, the config file).
const keyCacheTTL = 30 * time.Second

// keyCache keeps recently used keys and their tenants, so that authenticating
// a request costs a hash and a map lookup rather than a store query.
type keyCache struct {
	store   aigrid.Store
	mu      sync.RWMutex
	entries map[string]*keyEntry // by key hash
}

type keyEntry struct {
	key     *aigrid.Key
	tenant  *aigrid.Tenant
	fetched time.Time
}

func newKeyCache(store aigrid.Store) *keyCache {
	return &keyCache{store: store, entries: map[string]*keyEntry{}}
}

// flush forgets every cached key, after the admin API changed keys or tenants.
func (c *keyCache) flush() {
	c.mu.Lock()
	c.entries = map[string]*keyEntry{}
	c.mu.Unlock()
}

// lookup returns the key with this secret and its tenant (nil for admin keys).
func (c *keyCache) lookup(r *http.Request, secret string) (*aigrid.Key, *aigrid.Tenant, error) {
	hash := aigrid.HashKey(secret)
	now := time.Now()
	c.mu.RLock()
	e := c.entries[hash]
	c.mu.RUnlock()
	if e == nil || now.Sub(e.fetched) > keyCacheTTL {
		key, err := c.store.FindKeyByHash(r.Context(), hash)
		if aigrid.ErrorCode(err) == aigrid.ENotFound {
			return nil, nil, invalidKey()
		} else if err != nil {
			return nil, nil, err
		}
		e = &keyEntry{key: key, fetched: now}
		if !key.Admin {
			if e.tenant, err = c.store.FindTenantByID(r.Context(), key.TenantID); err != nil {
				return nil, nil, err
			}
		}
		c.mu.Lock()
		c.entries[hash] = e
		c.mu.Unlock()
	}
	if subtle.ConstantTimeCompare([]byte(e.key.Hash), []byte(hash)) != 1 {
		return nil, nil, invalidKey()
	}
	switch {
	case e.key.RevokedAt != nil:
		return nil, nil, aigrid.Errorf(aigrid.EUnauthenticated, "This API key (%s) has been revoked. Ask your operator for a new one.", e.key.Hint)
	case !e.key.Active(now):
		return nil, nil, aigrid.Errorf(aigrid.EUnauthenticated, "This API key (%s) expired on %s. Ask your operator for a new one.", e.key.Hint, e.key.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return e.key, e.tenant, nil
}

func invalidKey() error {
	return aigrid.Errorf(aigrid.EUnauthenticated, "Incorrect API key provided. Send a key of this grid as 'Authorization: Bearer KEY'.")
}

// bearer returns the secret from the Authorization header.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", aigrid.Errorf(aigrid.EUnauthenticated, "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.")
	}
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return "", aigrid.Errorf(aigrid.EUnauthenticated, "The Authorization header must be 'Bearer KEY'.")
	}
	return strings.TrimSpace(secret), nil
}

// tenantAuth admits requests that carry an active key of an enabled tenant.
func (s *Server) tenantAuth(h func(http.ResponseWriter, *http.Request, *aigrid.Call)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, err := bearer(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		key, tenant, err := s.keys.lookup(r, secret)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if key.Admin {
			writeError(w, r, aigrid.Errorf(aigrid.EForbidden, "This is an admin key; the /v1 API needs a tenant key (aigrid key create TENANT)."))
			return
		}
		if tenant.Disabled {
			writeError(w, r, aigrid.Errorf(aigrid.EForbidden, "The tenant %q is disabled. Contact the grid's operator.", tenant.Name))
			return
		}
		h(w, r, &aigrid.Call{ID: callID(w, r), Tenant: tenant, Key: key})
	})
}

// adminAuth admits requests that carry an active admin key.
func (s *Server) adminAuth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, err := bearer(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		key, _, err := s.keys.lookup(r, secret)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if !key.Admin {
			writeError(w, r, aigrid.Errorf(aigrid.EForbidden, "The admin API needs an admin key; this is a tenant key."))
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), adminKeyIDKey, key.ID)))
	})
}

// callID names a call in the ledger. It is the grid's own, never the
// client's X-Request-Id: two clients may send the same one, and a call ID
// must count once.
func callID(w http.ResponseWriter, r *http.Request) string {
	id := requestID(w)
	if id == r.Header.Get("X-Request-Id") {
		return newRequestID()
	}
	return id
}

// adminActor names the admin key behind a request, for the audit trail.
func adminActor(r *http.Request) string { return "key:" + adminKeyID(r) }

func adminKeyID(r *http.Request) string {
	id, _ := r.Context().Value(adminKeyIDKey).(string)
	return id
}
