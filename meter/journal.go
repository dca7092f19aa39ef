package meter

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"aigrid"
	"aigrid/internal/dirlock"
)

// journal is the meter's write-ahead log of settlements: segment files of
// framed records, appended a group at a time with one write and one sync.
// A settlement is durable once its group is synced, at the cost of a few
// hundred bytes of file, where a SQLite transaction rewrites a page of each
// of the usage and ledger tables and their indexes. The meter applies the
// journal to the ledger in large batches behind the request path, and
// deletes the segments it has applied whole.
//
// Segments are made at their full size, zero-filled and synced, before
// they take records: a sync then flushes data only, with no change to the
// file's size or extents for the file system to journal. On this project's
// machines that makes a group's fdatasync several times quicker than on a
// file that grows.
//
// The next segment is made ahead, behind the request path (prepare), under
// a name that is not a segment's, and renamed when the writer reaches it:
// making one on the writer's path held every settlement for as long as
// 8 MiB took to write and sync on a busy disk.
//
// A frame is the payload's length (4 bytes, little-endian), the payload's
// CRC-32C (4 bytes), then the payload. Reading stops at the first frame
// that is short, fails its checksum, or has length zero (the zeros of a
// segment's unwritten part): a group cut by a crash was never acknowledged
// to anyone.
type journal struct {
	dir string
	f   *os.File
	// lock holds the directory for this process.
	lock *dirlock.Lock
	seq  uint64 // the current segment's number
	size int64  // bytes of the current segment written and synced
	// ended lists the segments filled before the current one, whose
	// records may not all be applied yet.
	ended []string

	// spare is the next segment made ahead (by the applier alone), or nil;
	// spareMu guards it against the writer taking it.
	spareMu sync.Mutex
	spare   *os.File
}

// segmentSize is the size segments are made at.
var segmentSize int64 = 8 << 20

const (
	frameHeader = 8
	// maxRecord bounds a frame's claimed length, so that a corrupt length
	// cannot make the reader allocate gigabytes.
	maxRecord     = 1 << 20
	segmentSuffix = ".journal"
	// spareName is the next segment's name while it is made ahead.
	spareName = "next.spare"
	// lockName is the file whose lock keeps the journal to one process.
	lockName = "lock"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segmentRead is what an existing segment held.
type segmentRead struct {
	path    string
	seq     uint64
	records [][]byte
	// torn counts the bytes after the last whole frame; cut counts them up
	// to the last that is not zero: a group a crash cut short. A segment
	// is made whole and zeroed, so a torn tail of zeros was never written.
	torn, cut int64
}

// openJournal reads the segments left in dir by an earlier run, oldest
// first, and starts a new segment for writing, numbered after them and
// after segment after: a segment's number must never come again, or its
// records would be taken for ones the ledger applied.
func openJournal(dir string, after uint64) (*journal, []segmentRead, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("meter: journal: %w", err)
	}
	lock, err := dirlock.Take(filepath.Join(dir, lockName), "the settlement journal in "+dir)
	if err != nil {
		return nil, nil, err
	}
	j, read, err := readJournal(dir, after)
	if err != nil {
		lock.Release()
		return nil, nil, err
	}
	j.lock = lock
	return j, read, nil
}

// readJournal is openJournal once the directory is locked.
func readJournal(dir string, after uint64) (*journal, []segmentRead, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		return nil, nil, fmt.Errorf("meter: journal: %w", err)
	}
	type numbered struct {
		seq  uint64
		path string
	}
	var segs []numbered
	for _, p := range names {
		seq, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(p), segmentSuffix), 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("meter: journal: %s is not a journal segment; move it out of %s", p, dir)
		}
		segs = append(segs, numbered{seq, p})
	}
	slices.SortFunc(segs, func(a, b numbered) int { return cmp.Compare(a.seq, b.seq) })
	var read []segmentRead
	last := after
	for _, s := range segs {
		r, err := readSegment(s.path)
		if err != nil {
			return nil, nil, err
		}
		r.seq = s.seq
		read = append(read, r)
		last = max(last, s.seq)
	}
	// A spare left by the last run holds no record.
	if err := os.Remove(filepath.Join(dir, spareName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("meter: journal: %w", err)
	}
	j := &journal{dir: dir, seq: last}
	if err := j.next(); err != nil {
		return nil, nil, err
	}
	return j, read, nil
}

// readSegment reads a segment's whole frames.
func readSegment(path string) (segmentRead, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return segmentRead{path: path}, fmt.Errorf("meter: journal: %w", err)
	}
	records, torn := parseFrames(data)
	cut := len(bytes.TrimRight(data[len(data)-int(torn):], "\x00"))
	return segmentRead{path: path, records: records, torn: torn, cut: int64(cut)}, nil
}

// parseFrames splits data into the payloads of its whole frames, and counts
// the bytes after them.
func parseFrames(data []byte) (records [][]byte, torn int64) {
	for len(data) >= frameHeader {
		// No record is empty: a zero length is a tail never written.
		n := binary.LittleEndian.Uint32(data)
		if n == 0 || n > maxRecord || int(n) > len(data)-frameHeader {
			break
		}
		payload := data[frameHeader : frameHeader+int(n)]
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(data[4:]) {
			break
		}
		records = append(records, payload)
		data = data[frameHeader+int(n):]
	}
	return records, int64(len(data))
}

// next starts a new segment, made at its full size, and makes its name
// durable. It takes the spare when one is ready.
func (j *journal) next() error {
	path := j.segmentPath(j.seq + 1)
	j.spareMu.Lock()
	f := j.spare
	j.spare = nil
	j.spareMu.Unlock()
	var err error
	if f != nil {
		err = os.Rename(filepath.Join(j.dir, spareName), path)
	} else if f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
		err = zeroFill(f, segmentSize)
	} else {
		return fmt.Errorf("meter: journal: %w", err)
	}
	if err == nil {
		err = syncDir(j.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("meter: journal: new segment: %w", err)
	}
	if j.f != nil {
		j.f.Close()
		j.ended = append(j.ended, j.segmentPath(j.seq))
	}
	j.f, j.seq, j.size = f, j.seq+1, 0
	return nil
}

// prepare makes the next segment ahead, unless it is made. It runs in the
// applier's goroutine only, beside the writer, which it never holds up.
func (j *journal) prepare() error {
	j.spareMu.Lock()
	made := j.spare != nil
	j.spareMu.Unlock()
	if made {
		return nil
	}
	path := filepath.Join(j.dir, spareName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err == nil {
		if err = zeroFill(f, segmentSize); err != nil {
			f.Close()
			os.Remove(path)
			f = nil
		}
	}
	j.spareMu.Lock()
	j.spare = f
	j.spareMu.Unlock()
	if err != nil {
		return fmt.Errorf("meter: journal: make the next segment: %w", err)
	}
	return nil
}

// zeroFill writes n zero bytes to f and syncs them.
func zeroFill(f *os.File, n int64) error {
	zeros := make([]byte, min(n, 1<<20))
	for off := int64(0); off < n; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), n-off)], off); err != nil {
			return err
		}
	}
	return syncData(f)
}

func (j *journal) segmentPath(seq uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("%016d%s", seq, segmentSuffix))
}

// takeEnded returns the segments filled so far, and forgets them.
func (j *journal) takeEnded() []string {
	ended := j.ended
	j.ended = nil
	return ended
}

// keepEnded puts back segments that takeEnded returned and whose records
// could not all be applied, ahead of those filled since.
func (j *journal) keepEnded(ended []string) {
	j.ended = append(ended, j.ended...)
}

// openFrame starts a frame at the end of buf: its header, filled in by
// closeFrame once the payload is appended after it.
func openFrame(buf []byte) []byte {
	return append(buf, make([]byte, frameHeader)...)
}

// closeFrame fills in the header of the frame that starts at buf[at], whose
// payload runs to the end of buf.
func closeFrame(buf []byte, at int) []byte {
	payload := buf[at+frameHeader:]
	binary.LittleEndian.PutUint32(buf[at:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[at+4:], crc32.Checksum(payload, castagnoli))
	return buf
}

// errJournalBroken is returned once a failed write could not be undone: the
// segment's tail is unknown, so nothing more may be written after it.
var errJournalBroken = errors.New("meter: the settlement journal could not be repaired after a failed write")

// write appends frames (made by openFrame and closeFrame) and syncs them to disk,
// starting a new segment when they do not fit in the current one, and
// returns where they start. When the
// write or the sync fails, the segment is cut back to its last whole group,
// so that what the caller will report as not recorded is not replayed later.
func (j *journal) write(frames []byte) (aigrid.JournalPos, error) {
	if j.f == nil {
		return aigrid.JournalPos{}, errJournalBroken
	}
	if j.size > 0 && j.size+int64(len(frames)) > segmentSize {
		if err := j.next(); err != nil {
			return aigrid.JournalPos{}, err
		}
	}
	at := aigrid.JournalPos{Segment: j.seq, Offset: j.size}
	_, err := j.f.WriteAt(frames, j.size)
	if err == nil {
		err = syncData(j.f)
	}
	if err != nil {
		if terr := j.f.Truncate(j.size); terr != nil {
			j.f.Close()
			j.f = nil
			return at, fmt.Errorf("%w: %w (and then %w)", errJournalBroken, err, terr)
		}
		return at, fmt.Errorf("meter: journal write: %w", err)
	}
	j.size += int64(len(frames))
	return at, nil
}

// close closes the current segment and, when remove is set (everything in
// it was applied), deletes it, and deletes the spare.
func (j *journal) close(remove bool) error {
	// The directory is another process's to take only once this one is
	// done with it.
	defer j.lock.Release()
	j.spareMu.Lock()
	if j.spare != nil {
		j.spare.Close()
		os.Remove(filepath.Join(j.dir, spareName))
		j.spare = nil
	}
	j.spareMu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	if remove && err == nil {
		err = os.Remove(j.segmentPath(j.seq))
	}
	j.f = nil
	return err
}

// syncDir makes the directory's entries durable: a new segment's name must
// survive a power cut as surely as the records written into it.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("meter: journal: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("meter: journal: sync %s: %w", dir, err)
	}
	return nil
}
