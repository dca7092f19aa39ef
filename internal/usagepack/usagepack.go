// Package usagepack is the compact binary form of metered calls, shared by
// the meter's settlement journal (a call a record) and the SQLite ledger
// (the calls of one usage posting packed in one row). Integers are varints;
// strings and lists follow their lengths. Encoding costs no allocation and a
// few hundred nanoseconds a call.
package usagepack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"aigrid"
)

// AppendString appends s behind its length.
func AppendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// AppendCall appends the fields of a call that a journal record holds after
// its transaction: the call's ID, key, service model, provider and model,
// its tokens, blocks, charge, cost and flags. Its time and tenant are the
// transaction's.
func AppendCall(buf []byte, u *aigrid.UsageRecord) []byte {
	for _, s := range [...]string{u.ID, u.KeyID, u.Service, u.Provider, u.Model} {
		buf = AppendString(buf, s)
	}
	return appendCharge(buf, u)
}

// appendCharge appends a call's tokens, blocks, charge, cost and flags.
func appendCharge(buf []byte, u *aigrid.UsageRecord) []byte {
	buf = binary.AppendVarint(buf, u.PromptTokens)
	buf = binary.AppendVarint(buf, u.CompletionTokens)
	buf = binary.AppendUvarint(buf, uint64(len(u.Charge.Blocks)))
	for _, b := range u.Charge.Blocks {
		buf = binary.AppendVarint(buf, int64(b.Block))
		buf = binary.AppendVarint(buf, b.Input)
		buf = binary.AppendVarint(buf, b.Output)
		buf = binary.AppendVarint(buf, int64(b.Amount))
		buf = binary.AppendVarint(buf, b.Exact)
	}
	buf = binary.AppendVarint(buf, int64(u.Charge.Total))
	buf = binary.AppendVarint(buf, int64(u.Cost))
	var flags byte
	if u.Charge.OffPeak {
		flags |= 1
	}
	if u.Estimated {
		flags |= 2
	}
	return append(buf, flags)
}

// Reader reads encoded fields in order. The first field that is cut short
// or malformed sets Err, and every read after it gives a zero value, so
// that a caller checks once, at the end.
type Reader struct {
	b   []byte
	err error
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err is the first field's error, if any.
func (r *Reader) Err() error { return r.err }

// Len is the number of bytes not read yet.
func (r *Reader) Len() int { return len(r.b) }

func (r *Reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("the %s is cut short or malformed", what)
	}
	r.b = nil
}

// Varint reads a signed integer.
func (r *Reader) Varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Count reads a list's length, which cannot be more than the bytes left
// (every element takes at least one): a corrupt length allocates nothing.
func (r *Reader) Count(what string) int {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > uint64(len(r.b)-n) {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

// String reads a string.
func (r *Reader) String(what string) string {
	n := r.Count(what)
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// Byte reads one byte.
func (r *Reader) Byte(what string) byte {
	if len(r.b) == 0 {
		r.fail(what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// Call reads what AppendCall wrote into u; a call with no blocks gets none
// (a nil list).
func (r *Reader) Call(u *aigrid.UsageRecord) {
	u.ID, u.KeyID, u.Service = r.String("call id"), r.String("API key"), r.String("service model")
	u.Provider, u.Model = r.String("provider"), r.String("model")
	r.charge(u)
}

// charge reads what appendCharge wrote into u, reusing u's list of blocks.
func (r *Reader) charge(u *aigrid.UsageRecord) {
	u.PromptTokens, u.CompletionTokens = r.Varint("prompt tokens"), r.Varint("completion tokens")
	u.Charge.Blocks = u.Charge.Blocks[:0]
	for range r.Count("blocks") {
		u.Charge.Blocks = append(u.Charge.Blocks, aigrid.BlockCharge{
			Block: int(r.Varint("block")), Input: r.Varint("block input"), Output: r.Varint("block output"),
			Amount: aigrid.Money(r.Varint("block amount")), Exact: r.Varint("block exact price")})
	}
	u.Charge.Total = aigrid.Money(r.Varint("charge"))
	u.Cost = aigrid.Money(r.Varint("cost"))
	flags := r.Byte("flags")
	u.Charge.OffPeak, u.Estimated = flags&1 != 0, flags&2 != 0
}

// A pack holds the calls of one tenant (which the pack does not name) in
// the order given: a version byte, the number of calls, a table of the
// strings the calls share (keys, service models, providers, models), then
// each call: its time as the difference from the call before (the first's
// from zero), its ID, its four shared strings as indexes into the table,
// and its charge as AppendCall writes it.
const packVersion = 1

// Packer encodes packs, keeping its table's map from one pack to the next.
type Packer struct {
	index map[string]uint64
	table []string
	calls []byte
}

// Append appends the pack of calls to buf.
func (p *Packer) Append(buf []byte, calls []*aigrid.UsageRecord) []byte {
	if p.index == nil {
		p.index = map[string]uint64{}
	}
	clear(p.index)
	p.table, p.calls = p.table[:0], p.calls[:0]
	var prev int64
	for _, u := range calls {
		at := u.At.UnixNano()
		p.calls = binary.AppendVarint(p.calls, at-prev)
		prev = at
		p.calls = AppendString(p.calls, u.ID)
		for _, s := range [...]string{u.KeyID, u.Service, u.Provider, u.Model} {
			i, ok := p.index[s]
			if !ok {
				i = uint64(len(p.table))
				p.index[s] = i
				p.table = append(p.table, s)
			}
			p.calls = binary.AppendUvarint(p.calls, i)
		}
		p.calls = appendCharge(p.calls, u)
	}
	buf = append(buf, packVersion)
	buf = binary.AppendUvarint(buf, uint64(len(calls)))
	buf = binary.AppendUvarint(buf, uint64(len(p.table)))
	for _, s := range p.table {
		buf = AppendString(buf, s)
	}
	return append(buf, p.calls...)
}

// Pack reads a pack's calls one by one.
type Pack struct {
	r     Reader
	table []string
	left  int
	at    int64
}

// OpenPack reads a pack's header and string table.
func OpenPack(b []byte) (*Pack, error) {
	if len(b) == 0 || b[0] != packVersion {
		return nil, errors.New("usagepack: not a pack of a known version")
	}
	p := &Pack{r: Reader{b: b[1:]}}
	p.left = p.r.Count("number of calls")
	if n := p.r.Count("string table"); n > 0 {
		p.table = make([]string, n)
		for i := range p.table {
			p.table[i] = p.r.String("shared string")
		}
	}
	if p.left == 0 && p.r.err == nil && len(p.r.b) > 0 {
		p.r.err = fmt.Errorf("%d bytes after the last call", len(p.r.b))
	}
	if err := p.r.Err(); err != nil {
		return nil, fmt.Errorf("usagepack: %w", err)
	}
	return p, nil
}

// Len is the number of calls not read yet.
func (p *Pack) Len() int { return p.left }

// Next reads the next call into u (all of it but TenantID), reusing u's
// list of blocks; a call with no blocks gets an empty list, not nil. It
// returns false after the last call, or at a damaged one: see Err.
func (p *Pack) Next(u *aigrid.UsageRecord) bool {
	if p.left == 0 || p.r.err != nil {
		return false
	}
	p.left--
	p.at += p.r.Varint("call time")
	u.At = time.Unix(0, p.at).UTC()
	u.ID = p.r.String("call id")
	u.KeyID, u.Service, u.Provider, u.Model = p.shared(), p.shared(), p.shared(), p.shared()
	p.r.charge(u)
	if u.Charge.Blocks == nil {
		u.Charge.Blocks = []aigrid.BlockCharge{}
	}
	if p.left == 0 && p.r.err == nil && len(p.r.b) > 0 {
		p.r.err = fmt.Errorf("%d bytes after the last call", len(p.r.b))
	}
	return p.r.err == nil
}

func (p *Pack) shared() string {
	v, n := binary.Uvarint(p.r.b)
	if n <= 0 || v >= uint64(len(p.table)) {
		p.r.fail("shared string's index")
		return ""
	}
	p.r.b = p.r.b[n:]
	return p.table[v]
}

// Err reports a damaged pack once Next has returned false.
func (p *Pack) Err() error {
	if p.r.err != nil {
		return fmt.Errorf("usagepack: %w", p.r.err)
	}
	return nil
}
