package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// adminClient talks to a running server's admin API.
type adminClient struct {
	server string
	key    string
	json   bool
	out    io.Writer
	// flags are the command's parsed flags, for telling set from default.
	flags *flag.FlagSet
}

// adminFlags parses the flags every admin command shares, plus the command's
// own (declared by define), allowing flags after the positional arguments.
func adminFlags(name, usage string, args []string, out io.Writer, define func(*flag.FlagSet)) (*adminClient, []string, error) {
	c := &adminClient{out: out}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var help bytes.Buffer
	fs.SetOutput(&help)
	fs.StringVar(&c.server, "server", envOr("AIGRID_SERVER", "http://127.0.0.1:8080"), "URL of the running aigrid (env AIGRID_SERVER)")
	// The key from the environment is not the flag's default: -h and a flag
	// error print the defaults, and would show the secret.
	fs.StringVar(&c.key, "admin-key", "", "operator admin key (default: env AIGRID_ADMIN_KEY)")
	fs.BoolVar(&c.json, "json", false, "print the server's JSON answer")
	if define != nil {
		define(fs)
	}
	fs.Usage = func() {
		// The flag package has just written its error here; the error
		// returned carries it already, so it would show twice.
		help.Reset()
		fmt.Fprintf(&help, "usage: %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.Copy(out, &help)
			return nil, nil, errUsageShown
		}
		return nil, nil, fmt.Errorf("%v\n%s", err, help.String())
	}
	if c.key == "" {
		c.key = os.Getenv("AIGRID_ADMIN_KEY")
	}
	if c.key == "" {
		return nil, nil, errors.New("no admin key: pass --admin-key or set AIGRID_ADMIN_KEY (aigrid serve printed one on first start; aigrid init makes another)")
	}
	c.server = strings.TrimSuffix(c.server, "/")
	c.flags = fs
	return c, positional, nil
}

// parseInterleaved parses flags wherever they stand among the positional
// arguments. A negative number ("-2.50") is an argument, not a flag.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		i := slices.IndexFunc(args, isNegativeNumber)
		head := args
		if i >= 0 {
			head = args[:i]
		}
		if err := fs.Parse(head); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) > 0 {
			positional = append(positional, rest[0])
			args = slices.Concat(rest[1:], args[len(head):])
			continue
		}
		if i < 0 {
			return positional, nil
		}
		positional = append(positional, args[i])
		args = args[i+1:]
	}
}

func isNegativeNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil && strings.HasPrefix(s, "-")
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// call sends a request to the admin API and decodes the answer into out.
// It returns the raw answer too, for --json.
func (c *adminClient) call(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	raw, err := c.send(ctx, method, path, "application/json", body)
	if err != nil {
		return nil, err
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("the server's answer is not what this aigrid expects: %v", err)
		}
	}
	return raw, nil
}

// send sends a request asking for the accept format and returns the answer,
// or the server's error message.
func (c *adminClient) send(ctx context.Context, method, path, accept string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, rd)
	if err != nil {
		return nil, fmt.Errorf("bad server URL %q: %v", c.server, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", accept)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach aigrid at %s: is `aigrid serve` running? (%v)", c.server, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %v", c.server, err)
	}
	if resp.StatusCode >= 300 {
		return nil, errorIn(raw, resp.StatusCode)
	}
	return raw, nil
}

// answerError reads the server's error message out of an answer that is
// not a success.
func answerError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return errorIn(raw, resp.StatusCode)
}

// errorIn is the message of an OpenAI-shaped error body, with its status.
func errorIn(raw []byte, status int) error {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
		return fmt.Errorf("%s (HTTP %d)", e.Error.Message, status)
	}
	return fmt.Errorf("the server answered HTTP %d", status)
}

// printJSON writes a raw JSON answer, indented.
func (c *adminClient) printJSON(raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := c.out.Write(b.Bytes())
	return err
}

// table writes rows in aligned columns.
func (c *adminClient) table(header string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func commaList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

// subcommand picks the verb of an admin command.
func subcommand(name string, args []string, verbs string) (string, []string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", nil, fmt.Errorf("usage: aigrid %s %s ...", name, verbs)
	}
	return args[0], args[1:], nil
}

func wantArgs(positional []string, n int, usage string) error {
	if len(positional) != n {
		return fmt.Errorf("usage: %s", usage)
	}
	return nil
}
