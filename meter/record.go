package meter

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"aigrid"
	"aigrid/internal/usagepack"
)

// A journal record is one settlement: its usage transaction whole, with the
// call it charges. Records are binary (see package usagepack): a version
// byte, then the fields in a fixed order, integers as varints and strings
// and lists behind their lengths. Encoding one costs a few hundred
// nanoseconds and no allocation, where encoding/json took several
// microseconds per call. Journals written before the binary records hold JSON objects, which
// decodeSettlement still reads, so that an upgrade replays what the last
// run left.
const recordVersion = 1

// encodeSettlement appends a usage transaction's journal record to buf: the
// transaction, then its call in the form the ledger's packs share.
func encodeSettlement(buf []byte, tx *aigrid.LedgerTx) []byte {
	buf = append(buf, recordVersion)
	buf = usagepack.AppendString(buf, tx.Key)
	buf = binary.AppendVarint(buf, tx.TenantID)
	buf = binary.AppendVarint(buf, tx.At.UnixNano())
	buf = binary.AppendUvarint(buf, uint64(len(tx.Entries)))
	for _, e := range tx.Entries {
		buf = usagepack.AppendString(buf, e.Account)
		buf = binary.AppendVarint(buf, int64(e.Amount))
	}
	return usagepack.AppendCall(buf, tx.Usage)
}

// decodeSettlement reads a record that encodeSettlement wrote, or a JSON
// record of an older journal.
func decodeSettlement(b []byte) (*aigrid.LedgerTx, error) {
	var tx *aigrid.LedgerTx
	var err error
	switch {
	case len(b) > 0 && b[0] == '{':
		tx, err = decodeJSONRecord(b)
	case len(b) > 0 && b[0] == recordVersion:
		r := usagepack.NewReader(b[1:])
		tx = readSettlement(r)
		if err = r.Err(); err == nil && r.Len() > 0 {
			err = fmt.Errorf("%d bytes after the record", r.Len())
		}
	default:
		err = errors.New("unknown record version")
	}
	if err != nil {
		return nil, fmt.Errorf("a record does not decode: %w", err)
	}
	if !tx.Balanced() {
		return nil, fmt.Errorf("the settlement %s does not balance", tx.Key)
	}
	return tx, nil
}

func readSettlement(r *usagepack.Reader) *aigrid.LedgerTx {
	tx := &aigrid.LedgerTx{Kind: aigrid.TxUsage}
	tx.Key = r.String("key")
	tx.TenantID = r.Varint("tenant")
	tx.At = time.Unix(0, r.Varint("time"))
	if n := r.Count("entries"); n > 0 {
		tx.Entries = make([]aigrid.Entry, n)
		for i := range tx.Entries {
			tx.Entries[i] = aigrid.Entry{Account: r.String("account"), Amount: aigrid.Money(r.Varint("amount"))}
		}
	}
	u := &aigrid.UsageRecord{TenantID: tx.TenantID, At: tx.At}
	r.Call(u)
	tx.Usage = u
	return tx
}

// jsonRecord is the record of journals written before the binary records.
type jsonRecord struct {
	Key       string         `json:"key"`
	TenantID  int64          `json:"tenant"`
	At        int64          `json:"at"` // Unix nanoseconds
	Entries   []aigrid.Entry `json:"entries"`
	CallID    string         `json:"call"`
	KeyID     string         `json:"api_key,omitempty"`
	Service   string         `json:"service"`
	Provider  string         `json:"provider"`
	Model     string         `json:"model"`
	In        int64          `json:"in"`
	Out       int64          `json:"out"`
	Charge    aigrid.Charge  `json:"charge"`
	Cost      aigrid.Money   `json:"cost"`
	Estimated bool           `json:"estimated,omitempty"`
}

func decodeJSONRecord(b []byte) (*aigrid.LedgerTx, error) {
	var rec jsonRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	at := time.Unix(0, rec.At)
	return &aigrid.LedgerTx{Key: rec.Key, Kind: aigrid.TxUsage, TenantID: rec.TenantID, At: at, Entries: rec.Entries,
		Usage: &aigrid.UsageRecord{ID: rec.CallID, TenantID: rec.TenantID, KeyID: rec.KeyID, At: at,
			Service: rec.Service, Provider: rec.Provider, Model: rec.Model, PromptTokens: rec.In, CompletionTokens: rec.Out,
			Charge: rec.Charge, Cost: rec.Cost, Estimated: rec.Estimated}}, nil
}
