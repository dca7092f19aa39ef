package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"aigrid"
	"aigrid/dispatch"
)

// runDispatch shows a service model's merit order.
func runDispatch(ctx context.Context, args []string, stdout io.Writer) error {
	var tenant string
	const usage = "aigrid dispatch SERVICE_MODEL [--tenant NAME]"
	c, pos, err := adminFlags("dispatch", usage, args, stdout, func(fs *flag.FlagSet) {
		fs.StringVar(&tenant, "tenant", "", "apply this tenant's data policy")
	})
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, usage); err != nil {
		return err
	}
	path := "/admin/v1/dispatch/" + url.PathEscape(pos[0])
	if tenant != "" {
		path += "?tenant=" + url.QueryEscape(tenant)
	}
	var ex dispatch.Explanation
	raw, err := c.call(ctx, "GET", path, nil, &ex)
	if err != nil || c.json {
		return jsonOr(c, raw, err)
	}
	fmt.Fprintf(stdout, "%s: expected %d prompt and %d completion tokens a call", ex.ServiceModel, ex.ExpectedPrompt, ex.ExpectedOutput)
	if ex.Fallback != "" {
		fmt.Fprintf(stdout, "; brownout fallback %s", ex.Fallback)
	}
	fmt.Fprintln(stdout)
	rows := make([][]string, len(ex.Offers))
	for i, o := range ex.Offers {
		rank := "-"
		if o.In {
			rank = strconv.Itoa(o.Rank)
		}
		capacity := "∞"
		if o.Capacity > 0 {
			capacity = strconv.Itoa(o.Capacity)
		}
		rows[i] = []string{rank, o.Provider + "/" + o.Model, fmt.Sprintf("%.6f", o.ExpectedCost),
			fmt.Sprintf("%d/%s", o.InFlight, capacity), strconv.Itoa(o.Queued), fmt.Sprintf("%.0fms", o.TTFTSeconds*1000), o.Health, o.Reason}
	}
	return c.table("RANK\tOFFER\tEXPECTED COST\tIN FLIGHT\tQUEUED\tTTFT\tHEALTH\tWHY", rows)
}

// runServiceModel manages service model settings (brownout fallbacks).
func runServiceModel(ctx context.Context, args []string, stdout io.Writer) error {
	verb, args, err := subcommand("service-model", args, "set|list|remove")
	if err != nil {
		return err
	}
	switch verb {
	case "set":
		var fallback string
		const usage = "aigrid service-model set NAME --fallback SMALLER_MODEL"
		c, pos, err := adminFlags("service-model set", usage, args, stdout, func(fs *flag.FlagSet) {
			fs.StringVar(&fallback, "fallback", "", "service model that serves brownout tenants when this one is saturated")
		})
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		// Without it the fallback was cleared, silently: remove says so.
		if fallback == "" {
			return fmt.Errorf("--fallback is required (to take a fallback away: aigrid service-model remove %s)\nusage: %s", pos[0], usage)
		}
		raw, err := c.call(ctx, "PUT", "/admin/v1/service-models/"+url.PathEscape(pos[0]), aigrid.ServiceModel{Fallback: fallback}, nil)
		if err != nil || c.json {
			return jsonOr(c, raw, err)
		}
		fmt.Fprintf(stdout, "Service model %s: fallback %s.\n", pos[0], orDash(fallback))
		return nil
	case "list":
		c, _, err := adminFlags("service-model list", "aigrid service-model list", args, stdout, nil)
		if err != nil {
			return err
		}
		var list struct{ Data []aigrid.ServiceModel }
		raw, err := c.call(ctx, "GET", "/admin/v1/service-models", nil, &list)
		if err != nil || c.json {
			return jsonOr(c, raw, err)
		}
		rows := make([][]string, len(list.Data))
		for i, m := range list.Data {
			rows[i] = []string{m.Name, orDash(m.Fallback)}
		}
		return c.table("SERVICE MODEL\tFALLBACK", rows)
	case "remove":
		const usage = "aigrid service-model remove NAME"
		c, pos, err := adminFlags("service-model remove", usage, args, stdout, nil)
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		if _, err := c.call(ctx, "DELETE", "/admin/v1/service-models/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Service model %s has no settings now.\n", pos[0])
		return nil
	}
	return fmt.Errorf("unknown command \"service-model %s\": use set, list or remove", verb)
}
