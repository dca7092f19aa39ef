package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"aigrid"
)

func runKey(ctx context.Context, args []string, stdout io.Writer) error {
	verb, args, err := subcommand("key", args, "create|list|revoke")
	if err != nil {
		return err
	}
	switch verb {
	case "create":
		var name, models, expires string
		var tenantAdmin bool
		var limits aigrid.Limits
		const usage = "aigrid key create TENANT [--name NAME] [--models chat,embed] [--expires 2027-01-01|720h] [--rpm N] [--tpm N] [--tenant-admin]"
		c, pos, err := adminFlags("key create", usage, args, stdout, func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", "", "a name to tell the key apart (e.g. the app using it)")
			fs.StringVar(&models, "models", "", "comma-separated service models the key may use (default: all)")
			fs.StringVar(&expires, "expires", "", "expiry: a date (2027-01-01, midnight UTC), an RFC 3339 time, or a duration from now (720h)")
			fs.Int64Var(&limits.RPM, "rpm", 0, "the key's own requests per minute, within the tenant's (0: only the tenant's)")
			fs.Int64Var(&limits.TPM, "tpm", 0, "the key's own tokens per minute, within the tenant's (0: only the tenant's)")
			fs.BoolVar(&tenantAdmin, "tenant-admin", false, "the key may also manage its tenant's packages (approve alerts, settings)")
		})
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		body := struct {
			Name        string        `json:"name,omitempty"`
			Models      []string      `json:"models,omitempty"`
			ExpiresAt   *time.Time    `json:"expires_at,omitempty"`
			TenantAdmin bool          `json:"tenant_admin,omitempty"`
			Limits      aigrid.Limits `json:"limits"`
		}{Name: name, Models: commaList(models), TenantAdmin: tenantAdmin, Limits: limits}
		if expires != "" {
			t, err := parseExpiry(expires, time.Now())
			if err != nil {
				return err
			}
			body.ExpiresAt = &t
		}
		var created struct {
			Key    aigrid.Key `json:"key"`
			Secret string     `json:"secret"`
		}
		raw, err := c.call(ctx, "POST", "/admin/v1/tenants/"+url.PathEscape(pos[0])+"/keys", body, &created)
		if err != nil || c.json {
			return jsonOr(c, raw, err)
		}
		fmt.Fprintln(stdout, created.Secret)
		fmt.Fprintf(stdout, "\nKey %s for tenant %s. The secret above is shown only now: it is stored hashed and cannot be shown again.\n", created.Key.ID, pos[0])
		return nil
	case "list":
		const usage = "aigrid key list TENANT"
		c, pos, err := adminFlags("key list", usage, args, stdout, nil)
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		return c.listKeys(ctx, pos[0])
	case "revoke":
		const usage = "aigrid key revoke KEY_ID"
		c, pos, err := adminFlags("key revoke", usage, args, stdout, nil)
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		var k aigrid.Key
		raw, err := c.call(ctx, "POST", "/admin/v1/keys/"+url.PathEscape(pos[0])+"/revoke", nil, &k)
		if err != nil || c.json {
			return jsonOr(c, raw, err)
		}
		fmt.Fprintf(stdout, "Key %s (%s) revoked at %s; requests with it now fail.\n", k.ID, k.Hint, formatTime(k.RevokedAt))
		return nil
	}
	return fmt.Errorf("unknown command \"key %s\": use create, list or revoke", verb)
}

func (c *adminClient) listKeys(ctx context.Context, tenant string) error {
	var list struct{ Data []aigrid.Key }
	raw, err := c.call(ctx, "GET", "/admin/v1/tenants/"+url.PathEscape(tenant)+"/keys", nil, &list)
	if err != nil || c.json {
		return jsonOr(c, raw, err)
	}
	now := time.Now()
	rows := make([][]string, len(list.Data))
	for i, k := range list.Data {
		status := "active"
		switch {
		case k.RevokedAt != nil:
			status = "revoked"
		case !k.Active(now):
			status = "expired"
		}
		rows[i] = []string{k.ID, orDash(k.Name), k.Hint, orDash(strings.Join(k.Models, ",")), formatTime(k.ExpiresAt), status, formatTime(&k.CreatedAt)}
	}
	return c.table("ID\tNAME\tHINT\tMODELS\tEXPIRES\tSTATUS\tCREATED", rows)
}

// parseExpiry reads --expires: a date, an RFC 3339 time, or a duration from now.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("--expires %q is not a date (2027-01-01), an RFC 3339 time or a positive duration (720h)", s)
}
