package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"

	"aigrid"
)

func runTenant(ctx context.Context, args []string, stdout io.Writer) error {
	verb, args, err := subcommand("tenant", args, "add|list|show|disable|enable")
	if err != nil {
		return err
	}
	switch verb {
	case "add":
		var class, residency string
		var noRetention, brownout bool
		const usage = "aigrid tenant add NAME [--class lifeline|standard|priority|emergency] [--residency KE,TZ] [--no-retention] [--brownout]"
		c, pos, err := adminFlags("tenant add", usage, args, stdout, func(fs *flag.FlagSet) {
			fs.StringVar(&class, "class", "standard", "service class: lifeline, standard, priority or emergency")
			fs.StringVar(&residency, "residency", "", "comma-separated ISO 3166-1 alpha-2 jurisdictions the tenant's data may go to")
			fs.BoolVar(&noRetention, "no-retention", false, "only providers that retain no data")
			fs.BoolVar(&brownout, "brownout", false, "serve from a model's smaller fallback at once when the model is saturated, rather than wait")
		})
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		t := aigrid.Tenant{Name: pos[0], Class: aigrid.ServiceClass(class), Residency: commaList(strings.ToUpper(residency)), NoRetention: noRetention, Brownout: brownout}
		return c.showTenant(ctx, "POST", "/admin/v1/tenants", &t)
	case "list":
		const usage = "aigrid tenant list"
		c, pos, err := adminFlags("tenant list", usage, args, stdout, nil)
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 0, usage); err != nil {
			return err
		}
		var list struct{ Data []aigrid.Tenant }
		raw, err := c.call(ctx, "GET", "/admin/v1/tenants", nil, &list)
		if err != nil || c.json {
			return jsonOr(c, raw, err)
		}
		rows := make([][]string, len(list.Data))
		for i, t := range list.Data {
			rows[i] = tenantRow(&t)
		}
		return c.table("NAME\tCLASS\tRESIDENCY\tNO RETENTION\tSTATUS\tCREATED", rows)
	case "show":
		const usage = "aigrid tenant show NAME"
		c, pos, err := adminFlags("tenant show", usage, args, stdout, nil)
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		var t aigrid.Tenant
		raw, err := c.call(ctx, "GET", "/admin/v1/tenants/"+url.PathEscape(pos[0]), nil, &t)
		if err != nil || c.json {
			return jsonOr(c, raw, err)
		}
		if err := c.table("NAME\tCLASS\tRESIDENCY\tNO RETENTION\tSTATUS\tCREATED", [][]string{tenantRow(&t)}); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
		return c.listKeys(ctx, t.Name)
	case "disable", "enable":
		usage := "aigrid tenant " + verb + " NAME"
		c, pos, err := adminFlags("tenant "+verb, usage, args, stdout, nil)
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		disabled := verb == "disable"
		return c.showTenant(ctx, "PATCH", "/admin/v1/tenants/"+url.PathEscape(pos[0]), aigrid.TenantUpdate{Disabled: &disabled})
	}
	return fmt.Errorf("unknown command \"tenant %s\": use add, list, show, disable or enable", verb)
}

func (c *adminClient) showTenant(ctx context.Context, method, path string, body any) error {
	var t aigrid.Tenant
	raw, err := c.call(ctx, method, path, body, &t)
	if err != nil || c.json {
		return jsonOr(c, raw, err)
	}
	return c.table("NAME\tCLASS\tRESIDENCY\tNO RETENTION\tSTATUS\tCREATED", [][]string{tenantRow(&t)})
}

func tenantRow(t *aigrid.Tenant) []string {
	status := "active"
	if t.Disabled {
		status = "disabled"
	}
	residency := strings.Join(t.Residency, ",")
	return []string{t.Name, string(t.Class), orDash(residency), fmt.Sprint(t.NoRetention), status, formatTime(&t.CreatedAt)}
}

// jsonOr prints the raw answer when --json asked for it, or passes an error on.
func jsonOr(c *adminClient, raw []byte, err error) error {
	if err != nil {
		return err
	}
	return c.printJSON(raw)
}
