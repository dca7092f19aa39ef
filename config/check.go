package config

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"aigrid"
)

// check finds what the YAML decoder cannot: missing and invalid values,
// duplicates and references to things that do not exist. root is the file's
// node tree, from which each problem gets its line.
func (f *File) check(filename string, root *yaml.Node) Errors {
	var errs Errors
	add := func(line int, path, format string, args ...any) {
		if len(errs) < maxErrors {
			errs = append(errs, Error{File: filename, Line: line, Path: path, Reason: fmt.Sprintf(format, args...)})
		}
	}
	at := func(path ...any) int { return lineOf(root, path...) }

	switch f.Server.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		add(at("server", "log_level"), "server.log_level", "%q is not one of debug, info, warn, error", f.Server.LogLevel)
	}

	served := map[string]bool{}
	providers := map[string]bool{}
	for i, cfg := range f.ProviderConfigs() {
		path := fmt.Sprintf("providers[%d]", i)
		if cfg.Kind == "" {
			cfg.Kind = aigrid.KindOpenAI
			f.Providers[i].Kind = aigrid.KindOpenAI
		}
		if providers[cfg.Name] {
			add(at("providers", i, "name"), path+".name", "provider %q is listed twice", cfg.Name)
		}
		providers[cfg.Name] = true
		if err := cfg.Validate(); err != nil {
			add(at("providers", i), path, "%s", aigrid.ErrorMessage(err))
		}
		for j, o := range cfg.Offers {
			for _, s := range o.Serves {
				served[s] = true
			}
			// A model file that is not there would leave the provider
			// out at start, with only a line in the log: a file's typo
			// is better refused here, with its line.
			if cfg.Kind == aigrid.KindLocal && o.Path != "" {
				if _, err := os.Stat(o.Path); err != nil {
					add(at("providers", i, "offers", j, "path"), fmt.Sprintf("%s.offers[%d].path", path, j), "%v", err)
				}
			}
		}
	}

	if f.Dispatch.MaxAttempts < 0 || f.Dispatch.MaxQueue < 0 {
		add(at("dispatch"), "dispatch", "max_attempts and max_queue must not be negative")
	}
	models := map[string]bool{}
	for i, m := range f.ServiceModels {
		path := fmt.Sprintf("service_models[%d]", i)
		sm := aigrid.ServiceModel{Name: m.Name, Fallback: m.Fallback}
		switch {
		case models[m.Name]:
			add(at("service_models", i, "name"), path+".name", "service model %q is listed twice", m.Name)
		case sm.Validate() != nil:
			add(at("service_models", i), path, "%s", aigrid.ErrorMessage(sm.Validate()))
		case len(served) > 0 && !served[m.Name]:
			add(at("service_models", i, "name"), path+".name", "no offer in this file serves the model %q (served: %s)", m.Name, list(served))
		case len(served) > 0 && m.Fallback != "" && !served[m.Fallback]:
			add(at("service_models", i, "fallback"), path+".fallback", "no offer in this file serves the fallback %q (served: %s)", m.Fallback, list(served))
		}
		models[m.Name] = true
	}

	tenants := map[string]bool{}
	secrets := map[string]string{}
	for _, s := range f.AdminKeys {
		secrets[s] = "admin_keys"
	}
	for i, s := range f.AdminKeys {
		if len(s) < 16 {
			add(at("admin_keys", i), fmt.Sprintf("admin_keys[%d]", i), "an admin key must be at least 16 characters long")
		}
	}
	for i := range f.Tenants {
		ft := &f.Tenants[i]
		path := fmt.Sprintf("tenants[%d]", i)
		if tenants[ft.Name] {
			add(at("tenants", i, "name"), path+".name", "tenant %q is listed twice", ft.Name)
		}
		tenants[ft.Name] = true
		if err := ft.tenant().Validate(); err != nil {
			add(at("tenants", i), path, "%s", aigrid.ErrorMessage(err))
		}
		for j, k := range ft.Keys {
			kpath := fmt.Sprintf("%s.keys[%d]", path, j)
			switch {
			case len(k.Secret) < 8:
				add(at("tenants", i, "keys", j), kpath, "a key must be at least 8 characters long")
			case secrets[k.Secret] != "":
				add(at("tenants", i, "keys", j), kpath, "this key is also listed under %s", secrets[k.Secret])
			}
			secrets[k.Secret] = path
			for _, m := range k.Models {
				if len(served) > 0 && !served[m] {
					add(at("tenants", i, "keys", j), kpath+".models", "no offer in this file serves the model %q (served: %s)", m, list(served))
				}
			}
		}
	}
	f.checkBilling(add, at)
	f.checkPackages(add, at, tenants)
	return errs
}

func list(set map[string]bool) string {
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// lineOf follows a path of mapping keys (strings) and sequence indexes (ints)
// from the document's root and returns the line of the deepest node found.
func lineOf(root *yaml.Node, path ...any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, step := range path {
		var next *yaml.Node
		switch s := step.(type) {
		case string:
			for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == s {
					line, next = n.Content[i].Line, n.Content[i+1]
					break
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && s < len(n.Content) {
				next = n.Content[s]
				line = next.Line
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return line
}
