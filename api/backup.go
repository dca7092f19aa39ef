package api

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"aigrid"
)

// backup sends a copy of the whole store, as it stood at one moment, while
// the grid serves on: SQLite's file, which `aigrid restore` puts in a new
// data directory. The meter's journal is applied first, so that every call
// settled before the request came is in the copy. One backup runs at a
// time; another waits its turn. (Served only when Config.Backup is set.)
func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	select {
	case s.backups <- struct{}{}:
		defer func() { <-s.backups }()
	case <-ctx.Done():
		return
	}
	if s.cfg.Meter != nil {
		if err := s.cfg.Meter.Sync(ctx); err != nil {
			logger(w).Error("backup: apply the journal", "error", err.Error())
			writeError(w, r, aigrid.Errorf(aigrid.EUnavailable, "The settlements in the meter's journal could not be applied to the ledger, so a backup now would miss them. Try again; the log says why."))
			return
		}
	}
	start := time.Now()
	path, err := s.cfg.Backup(ctx)
	if err != nil {
		// writeError logs it, as every internal error.
		writeError(w, r, aigrid.Errorf(aigrid.EInternal, "The backup could not be made: %v. It is written in the data directory first, which needs as much free space as the store.", err))
		return
	}
	defer os.Remove(path)
	f, err := os.Open(path)
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/vnd.sqlite3")
	h.Set("Content-Length", strconv.FormatInt(st.Size(), 10))
	h.Set("Content-Disposition", `attachment; filename="aigrid-backup-`+start.UTC().Format("20060102T150405Z")+`.db"`)
	w.WriteHeader(http.StatusOK)
	// The connection copies the file (sendfile); a client that goes away
	// ends it, and the file is removed all the same.
	n, err := io.Copy(w, f)
	logger(w).Info("backup sent", "bytes", n, "seconds", time.Since(start).Seconds(), "complete", err == nil && n == st.Size())
}
