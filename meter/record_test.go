package meter

import (
	"reflect"
	"testing"
	"time"

	"aigrid"
)

func sampleSettlement() *aigrid.LedgerTx {
	at := time.Date(2026, 11, 30, 5, 30, 0, 123456789, time.UTC)
	return &aigrid.LedgerTx{Key: "usage:req_01", Kind: aigrid.TxUsage, TenantID: 7, At: at,
		Entries: []aigrid.Entry{{Account: "tenant:7", Amount: -1234}, {Account: "revenue", Amount: 1234}},
		Usage: &aigrid.UsageRecord{ID: "req_01", TenantID: 7, KeyID: "key-3", At: at, Service: "chat", Provider: "mock",
			Model: "fast", PromptTokens: 199_990, CompletionTokens: 40,
			Charge: aigrid.Charge{Total: 1234, OffPeak: true, Blocks: []aigrid.BlockCharge{
				{Block: 1, Input: 10, Amount: 0},
				{Block: 2, Input: 199_980, Output: 40, Amount: 1234, Exact: 1_233_999_999},
			}},
			Cost: 99, Estimated: true}}
}

// A record gives back the settlement it was made from, field for field,
// and so does the JSON record of a journal written before binary records.
func TestSettlementRecordRoundTrip(t *testing.T) {
	want := sampleSettlement()
	free := sampleSettlement()
	free.Usage.Charge = aigrid.Charge{}
	free.Usage.KeyID, free.Usage.Estimated = "", false
	for _, tx := range []*aigrid.LedgerTx{want, free} {
		sameSettlement(t, encodeSettlement(nil, tx), tx)
	}

	legacy := `{"key":"usage:req_01","tenant":7,"at":1796016600123456789,` +
		`"entries":[{"account":"tenant:7","amount":-1234},{"account":"revenue","amount":1234}],` +
		`"call":"req_01","api_key":"key-3","service":"chat","provider":"mock","model":"fast","in":199990,"out":40,` +
		`"charge":{"blocks":[{"block":1,"input_tokens":10,"output_tokens":0,"amount":0,"exact_micro":0},` +
		`{"block":2,"input_tokens":199980,"output_tokens":40,"amount":1234,"exact_micro":1233999999}],"total":1234,"off_peak":true},` +
		`"cost":99,"estimated":true}`
	sameSettlement(t, []byte(legacy), want)
}

// sameSettlement checks that rec decodes to want, field for field (the
// times as instants: a decoded one is in the local zone).
func sameSettlement(t *testing.T, rec []byte, want *aigrid.LedgerTx) {
	t.Helper()
	got, err := decodeSettlement(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !got.At.Equal(want.At) {
		t.Fatalf("time %v, want %v", got.At, want.At)
	}
	got.At, got.Usage.At = want.At, want.At
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q decoded\n%+v %+v\nwant\n%+v %+v", rec, got, got.Usage, want, want.Usage)
	}
}

// Every cut of a record, a record with bytes after it, an unknown version
// and an unbalanced settlement are refused with an error.
func TestSettlementRecordRefusesDamage(t *testing.T) {
	rec := encodeSettlement(nil, sampleSettlement())
	for n := range len(rec) {
		if _, err := decodeSettlement(rec[:n]); err == nil {
			t.Fatalf("a record cut to %d of %d bytes decoded", n, len(rec))
		}
	}
	if _, err := decodeSettlement(append(rec[:len(rec):len(rec)], 0)); err == nil {
		t.Fatal("a record with a byte after it decoded")
	}
	if _, err := decodeSettlement(append([]byte{9}, rec[1:]...)); err == nil {
		t.Fatal("a record of an unknown version decoded")
	}
	bad := sampleSettlement()
	bad.Entries[0].Amount--
	if _, err := decodeSettlement(encodeSettlement(nil, bad)); err == nil {
		t.Fatal("an unbalanced settlement decoded")
	}
}

func BenchmarkEncodeSettlement(b *testing.B) {
	tx := sampleSettlement()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = encodeSettlement(buf[:0], tx)
	}
}

// A record that decodes encodes back to the same bytes: the decoder reads
// nothing the encoder did not write.
func FuzzDecodeSettlement(f *testing.F) {
	f.Add(encodeSettlement(nil, sampleSettlement()))
	f.Add([]byte{recordVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte(`{"key":"k","entries":[{"account":"a","amount":1},{"account":"b","amount":-1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tx, err := decodeSettlement(data)
		if err != nil || data[0] != recordVersion {
			return
		}
		again := encodeSettlement(nil, tx)
		back, err := decodeSettlement(again)
		if err != nil || !reflect.DeepEqual(back, tx) {
			t.Fatalf("decoded %+v, which encodes to a record that decodes to %+v (%v)", tx, back, err)
		}
	})
}
