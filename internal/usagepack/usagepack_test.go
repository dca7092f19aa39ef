package usagepack

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"aigrid"
)

// sampleCalls are calls of one tenant, out of time order, sharing some
// strings, one of them free (no blocks) and one off-peak and estimated.
func sampleCalls() []*aigrid.UsageRecord {
	at := time.Date(2026, 11, 30, 5, 30, 0, 123456789, time.UTC)
	return []*aigrid.UsageRecord{
		{ID: "req_01", KeyID: "key-3", At: at, Service: "chat", Provider: "mock", Model: "fast", PromptTokens: 199_990, CompletionTokens: 40,
			Charge: aigrid.Charge{Total: 1234, OffPeak: true, Blocks: []aigrid.BlockCharge{
				{Block: 1, Input: 10},
				{Block: 2, Input: 199_980, Output: 40, Amount: 1234, Exact: 1_233_999_999},
			}}, Cost: 99, Estimated: true},
		{ID: "req_02", At: at.Add(-time.Second), Service: "package:forecast", PromptTokens: 40, Charge: aigrid.Charge{Blocks: []aigrid.BlockCharge{}}},
		{ID: "req_03", KeyID: "key-3", At: at.Add(time.Millisecond), Service: "chat", Provider: "other", Model: "fast", PromptTokens: 1, CompletionTokens: -1,
			Charge: aigrid.Charge{Total: -5, Blocks: []aigrid.BlockCharge{{Block: 3, Amount: -5, Exact: -4_999_999}}}, Cost: -2},
	}
}

// readPack decodes every call of a pack.
func readPack(b []byte) ([]*aigrid.UsageRecord, error) {
	p, err := OpenPack(b)
	if err != nil {
		return nil, err
	}
	var calls []*aigrid.UsageRecord
	for {
		u := &aigrid.UsageRecord{}
		if !p.Next(u) {
			break
		}
		calls = append(calls, u)
	}
	return calls, p.Err()
}

// A pack gives back its calls, field for field and in their order, and so
// does a pack written by a packer that wrote another before.
func TestPackRoundTrip(t *testing.T) {
	var packer Packer
	packer.Append(nil, []*aigrid.UsageRecord{{ID: "other", Service: "embed", Provider: "p", Model: "m"}})
	want := sampleCalls()
	got, err := readPack(packer.Append([]byte("prefix"), want)[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	empty, err := readPack(packer.Append(nil, nil))
	if err != nil || len(empty) != 0 {
		t.Fatalf("an empty pack: %v, %v", empty, err)
	}
}

// Every cut of a pack, a pack with bytes after it, an unknown version and a
// shared string's index past the table are refused with an error.
func TestPackRefusesDamage(t *testing.T) {
	var packer Packer
	pack := packer.Append(nil, sampleCalls())
	for n := range len(pack) {
		if _, err := readPack(pack[:n]); err == nil {
			t.Fatalf("a pack cut to %d of %d bytes decoded", n, len(pack))
		}
	}
	for _, bad := range [][]byte{
		append(pack[:len(pack):len(pack)], 0),
		append([]byte{9}, pack[1:]...),
		append(packer.Append(nil, nil), 0),
		// One call, an empty table, then the call's time, ID and an index.
		{packVersion, 1, 0, 0, 1, 'x', 0},
	} {
		if _, err := readPack(bad); err == nil {
			t.Fatalf("%x decoded", bad)
		}
	}
}

// The call's fields a journal record holds read back as written; a call
// with no blocks reads back with none.
func TestCallRoundTrip(t *testing.T) {
	for _, want := range sampleCalls() {
		want.At, want.TenantID = time.Time{}, 0
		if len(want.Charge.Blocks) == 0 {
			want.Charge.Blocks = nil
		}
		b := AppendCall(nil, want)
		r := NewReader(b)
		var got aigrid.UsageRecord
		r.Call(&got)
		if r.Err() != nil || r.Len() != 0 || !reflect.DeepEqual(&got, want) {
			t.Fatalf("decoded %+v (%v, %d bytes left), want %+v", got, r.Err(), r.Len(), want)
		}
		for n := range len(b) {
			r := NewReader(b[:n])
			r.Call(&got)
			if r.Err() == nil {
				t.Fatalf("a call cut to %d of %d bytes decoded", n, len(b))
			}
		}
	}
}

// BenchmarkPack packs and reads 512 calls with IDs of the grid's form
// (req_ and 24 hex digits).
func BenchmarkPack(b *testing.B) {
	calls := make([]*aigrid.UsageRecord, 512)
	for i := range calls {
		c := *sampleCalls()[0]
		c.ID = fmt.Sprintf("req_%024x", i*7919)
		c.At = c.At.Add(time.Duration(i) * 97 * time.Microsecond)
		calls[i] = &c
	}
	var packer Packer
	var buf []byte
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = packer.Append(buf[:0], calls)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(calls)), "ns/call")
		b.ReportMetric(float64(len(buf))/float64(len(calls)), "bytes/call")
	})
	b.Run("read", func(b *testing.B) {
		var u aigrid.UsageRecord
		for b.Loop() {
			p, err := OpenPack(buf)
			if err != nil {
				b.Fatal(err)
			}
			for p.Next(&u) {
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(calls)), "ns/call")
	})
}

// A pack that decodes encodes back to one that decodes to the same calls:
// the decoder reads nothing the encoder does not write.
func FuzzPack(f *testing.F) {
	var packer Packer
	f.Add(packer.Append(nil, sampleCalls()))
	f.Add(packer.Append(nil, nil))
	f.Add([]byte{packVersion, 1, 1, 1, 'k', 0, 0, 0, 0, 0, 0})
	f.Add([]byte{packVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		calls, err := readPack(data)
		if err != nil {
			return
		}
		var packer Packer
		again, err := readPack(packer.Append(nil, calls))
		if err != nil || !reflect.DeepEqual(again, calls) {
			t.Fatalf("decoded %+v, which packs to %+v (%v)", calls, again, err)
		}
	})
}
