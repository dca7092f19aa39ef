package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"aigrid/sqlite"
)

// runBackup downloads a copy of a running grid's whole store, checks it,
// and keeps it under a name that no earlier file has.
func runBackup(ctx context.Context, args []string, stdout io.Writer) error {
	var out string
	c, pos, err := adminFlags("backup", "aigrid backup [--out FILE]", args, stdout, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "out", "", "file to write (default: the server's name for it, aigrid-backup-TIME.db, here)")
	})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("usage: aigrid backup [--out FILE]; unexpected %q", pos[0])
	}
	if out != "" {
		if err := notThere(out); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, "GET", c.server+"/admin/v1/backup", nil)
	if err != nil {
		return fmt.Errorf("bad server URL %q: %v", c.server, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach aigrid at %s: is `aigrid serve` running? (%v)", c.server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return answerError(resp)
	}
	if out == "" {
		_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
		// Only a plain name, here: never a path that the server chose.
		if out = filepath.Base(params["filename"]); params["filename"] == "" || out != params["filename"] {
			out = "aigrid-backup-" + time.Now().UTC().Format("20060102T150405Z") + ".db"
		}
		if err := notThere(out); err != nil {
			return err
		}
	}
	// The copy lands beside its final name and takes it only once whole and
	// checked: a backup cut short never looks like one.
	part := out + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("cannot write the backup: %w", err)
	}
	defer os.Remove(part)
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, sum), resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("the backup was cut short, and nothing was kept: %w", err)
	}
	info, err := sqlite.Inspect(ctx, part)
	if err != nil {
		return fmt.Errorf("the backup received does not check, and was not kept: %w", err)
	}
	if err := keepAs(part, out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written to %s: %s, sha256 %s\n%s\n", out, sizeString(n), hex.EncodeToString(sum.Sum(nil)), describeStore(info))
	return nil
}

// runRestore puts a backup in a new data directory, for `aigrid serve
// --data DIR` to start from. It never overwrites a store.
func runRestore(ctx context.Context, args []string, stdout io.Writer) error {
	m := NewMain()
	var from string
	fs := flag.NewFlagSet("aigrid restore", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.StringVar(&from, "from", "", "the backup file (made by aigrid backup)")
	fs.StringVar(&m.DataDir, "data", m.DataDir, "the new data directory (created if missing; must hold no store)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errUsageShown
		}
		return err
	}
	if from == "" && len(pos) == 1 {
		from, pos = pos[0], nil
	}
	if from == "" || len(pos) > 0 {
		return errors.New("usage: aigrid restore --from FILE [--data DIR]")
	}
	info, err := sqlite.Inspect(ctx, from)
	if err != nil {
		return err
	}
	db := filepath.Join(m.DataDir, "aigrid.db")
	if _, err := os.Stat(db); err == nil {
		return fmt.Errorf("%s already holds a store (aigrid.db): restore into a new directory, or move that one away first; a restore never overwrites", m.DataDir)
	}
	if segs, _ := filepath.Glob(filepath.Join(m.journalDir(), "*.journal")); len(segs) > 0 {
		return fmt.Errorf("%s holds a settlement journal of another store (%d segments in %s): restore into a new directory", m.DataDir, len(segs), m.journalDir())
	}
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return fmt.Errorf("cannot create the data directory: %w", err)
	}
	part := db + ".part"
	if err := copyFile(from, part); err != nil {
		os.Remove(part)
		return fmt.Errorf("cannot copy the backup into %s: %w", m.DataDir, err)
	}
	defer os.Remove(part)
	if err := keepAs(part, db); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s into %s\n%s\nStart the grid with: aigrid serve --data %s (and the configuration file it ran with)\n", from, m.DataDir, describeStore(info), m.DataDir)
	return nil
}

// notThere refuses a name that a file already has.
func notThere(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists: name another file with --out; a backup never overwrites one", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// keepAs gives the file at part the name path, unless a file has it already
// (a link fails where a rename would overwrite), and makes the name durable.
func keepAs(part, path string) error {
	if err := os.Link(part, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: a backup never overwrites a file", path)
		}
		return err
	}
	os.Remove(part)
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// copyFile copies src to a new file dst, readable by its owner only, and
// syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// describeStore says in a line what a store holds.
func describeStore(info *sqlite.BackupInfo) string {
	currency := info.Currency
	if currency == "" {
		currency = "no currency yet"
	}
	last := "no ledger transaction yet"
	if !info.Last.IsZero() {
		last = "the last at " + info.Last.Format("2006-01-02 15:04:05 MST")
	}
	return fmt.Sprintf("schema %d, %s, %d tenants, %d calls in %d ledger transactions, %s (integrity checked)",
		info.Schema, currency, info.Tenants, info.Calls, info.Transactions, last)
}
