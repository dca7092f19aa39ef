package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"aigrid"
)

// offerFlags collects repeated --offer values.
type offerFlags []aigrid.Offer

func (o *offerFlags) String() string { return "" }

// Set parses "model=small-chat,serves=chat|chat-fast,input=0.10,output=0.40,max_concurrency=32,context_length=8192,capabilities=chat|tools"
// (and path=FILE for a local offer).
func (o *offerFlags) Set(s string) error {
	var offer aigrid.Offer
	for _, field := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok {
			return fmt.Errorf("%q is not key=value", field)
		}
		var err error
		switch k {
		case "model":
			offer.Model = v
		case "serves":
			offer.Serves = strings.Split(v, "|")
		case "capabilities":
			offer.Capabilities = strings.Split(v, "|")
		case "input":
			offer.Price.Input, err = aigrid.ParseRate(v)
		case "output":
			offer.Price.Output, err = aigrid.ParseRate(v)
		case "max_concurrency":
			offer.MaxConcurrency, err = strconv.Atoi(v)
		case "context_length":
			offer.ContextLength, err = strconv.Atoi(v)
		case "path":
			offer.Path = v
		default:
			return fmt.Errorf("unknown offer field %q (model, serves, input, output, max_concurrency, context_length, capabilities, path)", k)
		}
		if err != nil {
			return fmt.Errorf("offer field %s: %q is not a number", k, v)
		}
	}
	if offer.Model == "" || len(offer.Serves) == 0 {
		return fmt.Errorf("an offer needs at least model= and serves=")
	}
	*o = append(*o, offer)
	return nil
}

func runProvider(ctx context.Context, args []string, stdout io.Writer) error {
	verb, args, err := subcommand("provider", args, "add|list|show|remove")
	if err != nil {
		return err
	}
	switch verb {
	case "add":
		var p aigrid.ProviderConfig
		var offers offerFlags
		var file string
		const usage = "aigrid provider add NAME --base-url URL [--api-key-env ENV] [--jurisdiction KE] [--retains-data] --offer 'model=M,serves=chat|chat-fast,input=0.1,output=0.4' [--offer ...]\n       aigrid provider add NAME --kind local --offer 'model=M,serves=chat,path=/models/m.gguf'\n       aigrid provider add --file provider.json"
		c, pos, err := adminFlags("provider add", usage, args, stdout, func(fs *flag.FlagSet) {
			fs.StringVar(&p.Kind, "kind", aigrid.KindOpenAI, "provider kind: openai (an upstream) or local (the embedded engine; offers name a GGUF path)")
			fs.StringVar(&p.BaseURL, "base-url", "", "the upstream's OpenAI API base URL, such as http://127.0.0.1:9100/v1")
			fs.StringVar(&p.APIKeyEnv, "api-key-env", "", "environment variable of the server that holds the upstream's key")
			fs.StringVar(&p.Jurisdiction, "jurisdiction", "", "ISO 3166-1 alpha-2 country where the provider processes data")
			fs.BoolVar(&p.RetainsData, "retains-data", false, "the provider keeps prompts or completions")
			fs.Var(&offers, "offer", "an offer: model=M,serves=A|B,input=P,output=P,max_concurrency=N,context_length=N,capabilities=chat|tools,path=FILE (repeatable)")
			fs.StringVar(&file, "file", "", "a JSON provider configuration instead of the flags")
		})
		if err != nil {
			return err
		}
		if file != "" {
			raw, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			// A field the grid does not know would be dropped here, before
			// the server could refuse it: a misspelt max_concurrency stored
			// the provider with no limit.
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
					return fmt.Errorf("%s: unknown field %s: check its spelling; nothing was changed", file, name)
				}
				return fmt.Errorf("%s: %v", file, err)
			}
			if len(pos) == 1 {
				p.Name = pos[0]
			}
		} else {
			if err := wantArgs(pos, 1, usage); err != nil {
				return err
			}
			p.Name, p.Offers = pos[0], offers
			if len(p.Offers) == 0 {
				return fmt.Errorf("a provider needs at least one --offer\nusage: %s", usage)
			}
		}
		if p.Name == "" {
			return fmt.Errorf("the provider needs a name\nusage: %s", usage)
		}
		var got aigrid.ProviderConfig
		raw, err := c.call(ctx, "PUT", "/admin/v1/providers/"+url.PathEscape(p.Name), &p, &got)
		if err != nil || c.json {
			return jsonOr(c, raw, err)
		}
		return c.providerTable([]aigrid.ProviderConfig{got})
	case "list":
		const usage = "aigrid provider list"
		c, pos, err := adminFlags("provider list", usage, args, stdout, nil)
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 0, usage); err != nil {
			return err
		}
		var list struct{ Data []aigrid.ProviderConfig }
		raw, err := c.call(ctx, "GET", "/admin/v1/providers", nil, &list)
		if err != nil || c.json {
			return jsonOr(c, raw, err)
		}
		return c.providerTable(list.Data)
	case "show":
		const usage = "aigrid provider show NAME"
		c, pos, err := adminFlags("provider show", usage, args, stdout, nil)
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		var p aigrid.ProviderConfig
		raw, err := c.call(ctx, "GET", "/admin/v1/providers/"+url.PathEscape(pos[0]), nil, &p)
		if err != nil || c.json {
			return jsonOr(c, raw, err)
		}
		return c.providerTable([]aigrid.ProviderConfig{p})
	case "remove":
		const usage = "aigrid provider remove NAME"
		c, pos, err := adminFlags("provider remove", usage, args, stdout, nil)
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		if _, err := c.call(ctx, "DELETE", "/admin/v1/providers/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Provider %s removed; requests in flight on it finish.\n", pos[0])
		return nil
	}
	return fmt.Errorf("unknown command \"provider %s\": use add, list, show or remove", verb)
}

// providerTable prints one row per offer.
func (c *adminClient) providerTable(ps []aigrid.ProviderConfig) error {
	var rows [][]string
	for _, p := range ps {
		for _, o := range p.Offers {
			rows = append(rows, []string{p.Name, p.Kind, orDash(p.Jurisdiction), fmt.Sprint(p.RetainsData), o.Model,
				strings.Join(o.Serves, ","), o.Price.Input.String() + "/" + o.Price.Output.String(),
				strconv.Itoa(o.MaxConcurrency), strconv.Itoa(o.ContextLength), orDash(p.BaseURL)})
		}
	}
	return c.table("PROVIDER\tKIND\tJURISDICTION\tRETAINS DATA\tMODEL\tSERVES\tPRICE IN/OUT\tMAX CONC.\tCONTEXT\tBASE URL", rows)
}
