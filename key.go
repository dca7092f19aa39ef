package aigrid

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"
)

// Key is an API credential. A tenant key belongs to one tenant; an admin key
// (Admin true, TenantID 0) belongs to the operator. Only the SHA-256 of the
// secret is stored: keys are 190-bit random strings, so a fast hash is enough.
type Key struct {
	ID       string `json:"id"`
	TenantID int64  `json:"tenant_id,omitempty"`
	Admin    bool   `json:"admin,omitempty"`
	// TenantAdmin lets a tenant key manage its tenant's packages (approve an
	// alert), besides using the service.
	TenantAdmin bool   `json:"tenant_admin,omitempty"`
	Name        string `json:"name,omitempty"`
	// Hint is the start and end of the secret, enough for a person to tell keys apart.
	Hint string `json:"hint"`
	Hash string `json:"-"`
	// Models, when set, limits the key to these service models.
	Models []string `json:"models,omitempty"`
	// Limits are the key's own rate limits (rpm, tpm), within the tenant's.
	Limits    Limits     `json:"limits,omitzero"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

// Active reports whether the key may be used at time now.
func (k *Key) Active(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// AllowsModel reports whether the key may use the service model.
func (k *Key) AllowsModel(model string) bool {
	return len(k.Models) == 0 || slices.Contains(k.Models, model)
}

// KeyService stores keys.
type KeyService interface {
	// CreateKey stores k (with k.Hash set) and sets k.ID and k.CreatedAt.
	// A key whose hash is already stored is left as it is and k is filled from it.
	CreateKey(ctx context.Context, k *Key) error
	FindKeyByHash(ctx context.Context, hash string) (*Key, error)
	FindKeyByID(ctx context.Context, id string) (*Key, error)
	// ListKeys lists a tenant's keys; tenantID 0 lists the admin keys.
	ListKeys(ctx context.Context, tenantID int64) ([]*Key, error)
	RevokeKey(ctx context.Context, id string) (*Key, error)
	// CountAdminKeys counts the admin keys that are neither revoked nor expired.
	CountAdminKeys(ctx context.Context) (int, error)
}

// HashKey returns the stored form of a secret key.
func HashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// KeyHint returns the part of a secret that is safe to show again.
func KeyHint(secret string) string {
	if len(secret) < 16 {
		return "…"
	}
	return secret[:8] + "…" + secret[len(secret)-4:]
}

const keyAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewSecret returns a fresh random secret key with the given prefix
// ("sk-" for tenant keys, "sk-admin-" for admin keys), 32 base62 characters long.
func NewSecret(prefix string) string {
	var raw [32]byte
	out := make([]byte, 0, len(prefix)+len(raw))
	out = append(out, prefix...)
	for {
		rand.Read(raw[:])
		for _, b := range raw {
			// Rejection sampling keeps the alphabet uniform: 248 = 4*62.
			if b < 248 {
				out = append(out, keyAlphabet[b%62])
				if len(out) == len(prefix)+32 {
					return string(out)
				}
			}
		}
	}
}

// NewID returns a short random identifier with the given prefix, such as "key_3fa9c1d2e4b5".
func NewID(prefix string) string {
	var raw [6]byte
	rand.Read(raw[:])
	return prefix + hex.EncodeToString(raw[:])
}
