package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sample builds a file with every metadata type and a few tensors.
func sample(t testing.TB, align uint32) []byte {
	t.Helper()
	w := NewWriter()
	w.Set("general.architecture", "llama")
	if align != 0 {
		w.Set("general.alignment", align)
	}
	w.Set("u8", uint8(200))
	w.Set("i8", int8(-100))
	w.Set("u16", uint16(60000))
	w.Set("i16", int16(-30000))
	w.Set("u32", uint32(4000000000))
	w.Set("i32", int32(-2000000000))
	w.Set("f32", float32(1.5))
	w.Set("bool", true)
	w.Set("str", "héllo")
	w.Set("u64", uint64(math.MaxUint64))
	w.Set("i64", int64(math.MinInt64))
	w.Set("f64", math.Pi)
	w.Set("a.u8", []uint8{1, 2, 3})
	w.Set("a.i8", []int8{-1, 2})
	w.Set("a.u16", []uint16{1, 65535})
	w.Set("a.i16", []int16{-1, 7})
	w.Set("a.u32", []uint32{7, 8})
	w.Set("a.i32", []int32{-7, 8})
	w.Set("a.f32", []float32{0.5, -2})
	w.Set("a.bool", []bool{true, false, true})
	w.Set("a.str", []string{"a", "", "ß"})
	w.Set("a.u64", []uint64{1 << 40})
	w.Set("a.i64", []int64{-1 << 40})
	w.Set("a.f64", []float64{2.25})
	inner1, _ := ValueOf([]int32{1, 2})
	inner2, _ := ValueOf([]int32{3})
	w.Set("a.nested", []Value{inner1, inner2})
	w.Set("a.empty", []string{})

	f32 := make([]byte, 4*3*2)
	for i := range 6 {
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(float32(i)))
	}
	w.AddTensor("a", F32, []uint64{3, 2}, f32)
	w.AddTensor("b", Q8_0, []uint64{64}, bytes.Repeat([]byte{9}, 68))
	w.AddTensor("empty", F16, []uint64{0}, nil)
	w.AddTensor("c", Q4_K, []uint64{256, 1}, bytes.Repeat([]byte{5}, 144))
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	for _, align := range []uint32{0, 64} {
		b := sample(t, align)
		f, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		want := uint64(DefaultAlignment)
		if align != 0 {
			want = uint64(align)
		}
		if f.Alignment != want || f.Version != 3 || f.DataOffset%want != 0 {
			t.Errorf("alignment %d version %d data offset %d", f.Alignment, f.Version, f.DataOffset)
		}
		checks := map[string]any{
			"u8": uint8(200), "i8": int8(-100), "u16": uint16(60000), "i16": int16(-30000),
			"u32": uint32(4000000000), "i32": int32(-2000000000), "f32": float32(1.5), "bool": true,
			"str": "héllo", "u64": uint64(math.MaxUint64), "i64": int64(math.MinInt64), "f64": math.Pi,
			"a.u8": []uint8{1, 2, 3}, "a.i8": []int8{-1, 2}, "a.u16": []uint16{1, 65535},
			"a.i16": []int16{-1, 7}, "a.u32": []uint32{7, 8}, "a.i32": []int32{-7, 8},
			"a.f32": []float32{0.5, -2}, "a.bool": []bool{true, false, true}, "a.str": []string{"a", "", "ß"},
			"a.u64": []uint64{1 << 40}, "a.i64": []int64{-1 << 40}, "a.f64": []float64{2.25},
			"a.empty": []string{},
		}
		for k, x := range checks {
			v, ok := f.Value(k)
			if !ok || !reflect.DeepEqual(v.Interface(), x) {
				t.Errorf("%s = %#v, want %#v", k, v.Interface(), x)
			}
		}
		v, _ := f.Value("a.nested")
		n := v.Interface().([]Value)
		if v.Elem() != TypeArray || len(n) != 2 || !reflect.DeepEqual(n[0].Interface(), []int32{1, 2}) ||
			!reflect.DeepEqual(n[1].Interface(), []int32{3}) {
			t.Errorf("nested = %#v", v)
		}
		if keys := f.Keys(); keys[0] != "general.architecture" || len(keys) != len(checks)+2+boolInt(align != 0) {
			t.Errorf("keys %v", keys)
		}

		tn, err := f.Tensor("a")
		if err != nil || tn.Type != F32 || !reflect.DeepEqual(tn.Dims, []uint64{3, 2}) || len(tn.Data) != 24 ||
			math.Float32frombits(binary.LittleEndian.Uint32(tn.Data[20:])) != 5 {
			t.Errorf("tensor a: %+v %v", tn, err)
		}
		tn, err = f.Tensor("c")
		if err != nil || tn.Size != 144 || tn.Offset%want != 0 || tn.Data[143] != 5 || tn.Elements() != 256 {
			t.Errorf("tensor c: %+v %v", tn.TensorInfo, err)
		}
		if tn, err := f.Tensor("empty"); err != nil || len(tn.Data) != 0 {
			t.Errorf("empty tensor: %v", err)
		}
		if _, err := f.Tensor("nope"); !errors.Is(err, ErrMissing) {
			t.Errorf("missing tensor: %v", err)
		}
		// Writing what was read gives the same bytes.
		w := NewWriter()
		for _, k := range f.Keys() {
			v, _ := f.Value(k)
			w.Set(k, v)
		}
		for _, ti := range f.Tensors() {
			tn, _ := f.Tensor(ti.Name)
			w.AddTensor(ti.Name, ti.Type, ti.Dims, tn.Data)
		}
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), b) {
			t.Errorf("rewrite differs (%v)", err)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestAccessors(t *testing.T) {
	f, err := Parse(sample(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := f.String("str"); s != "héllo" || err != nil {
		t.Errorf("String = %q, %v", s, err)
	}
	if x, err := f.Uint32("u16"); x != 60000 || err != nil {
		t.Errorf("Uint32(u16) = %d, %v", x, err)
	}
	if x, err := f.Uint64("u64"); x != math.MaxUint64 || err != nil {
		t.Errorf("Uint64 = %d, %v", x, err)
	}
	if x, err := f.Int64("i64"); x != math.MinInt64 || err != nil {
		t.Errorf("Int64 = %d, %v", x, err)
	}
	if x, err := f.Float32("f32"); x != 1.5 || err != nil {
		t.Errorf("Float32 = %v, %v", x, err)
	}
	if x, err := f.Bool("bool"); !x || err != nil {
		t.Errorf("Bool = %v, %v", x, err)
	}
	if x, err := f.Strings("a.str"); len(x) != 3 || err != nil {
		t.Errorf("Strings = %v, %v", x, err)
	}
	sa, err := f.StringArray("a.str")
	var got []string
	for i, b := range sa.All() {
		if i != len(got) {
			t.Errorf("StringArray index %d after %d strings", i, len(got))
		}
		got = append(got, string(b))
	}
	if err != nil || sa.Len() != 3 || !reflect.DeepEqual(got, []string{"a", "", "ß"}) {
		t.Errorf("StringArray = %q (Len %d), %v", got, sa.Len(), err)
	}
	for range sa.All() {
		break // stops when told
	}
	if sa, err := f.StringArray("a.empty"); err != nil || sa.Len() != 0 {
		t.Errorf("empty StringArray: Len %d, %v", sa.Len(), err)
	} else {
		for range sa.All() {
			t.Error("empty StringArray yields")
		}
	}
	if x, err := f.Float32s("a.f32"); len(x) != 2 || err != nil {
		t.Errorf("Float32s = %v, %v", x, err)
	}
	if x, err := f.Int32s("a.i32"); len(x) != 2 || err != nil {
		t.Errorf("Int32s = %v, %v", x, err)
	}
	if x, err := f.Uint32s("a.u32"); len(x) != 2 || err != nil {
		t.Errorf("Uint32s = %v, %v", x, err)
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{second(f.String("u32")), `key "u32" is uint32, not string`},
		{second(f.Uint32("str")), `key "str" is string, not an integer`},
		{second(f.Uint32("i32")), `out of range for uint32`},
		{second(f.Uint32("u64")), `out of range`},
		{second(f.Uint64("i8")), `negative`},
		{second(f.Strings("a.i32")), `key "a.i32" is array of int32, not array of string`},
		{second(f.StringArray("a.i32")), `key "a.i32" is array of int32, not array of string`},
		{second(f.StringArray("str")), `key "str" is string, not array`},
		{second(f.Float32s("f32")), `is float32, not array`},
		{second(f.Bool("u8")), `is uint8, not bool`},
		{second(f.String("nope")), `key "nope": not present`},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("error %v, want %q", c.err, c.want)
		}
	}
	if _, err := f.String("nope"); !errors.Is(err, ErrMissing) {
		t.Errorf("missing key error %v does not wrap ErrMissing", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestVersion2AndOpen(t *testing.T) {
	b := sample(t, 0)
	b[4] = 2 // v2 has the same layout as v3
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 2 {
		t.Errorf("version %d", f.Version)
	}
	tn, err := f.Tensor("b")
	if err != nil || len(tn.Data) != 68 || tn.Data[0] != 9 {
		t.Errorf("tensor b: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Tensor("b"); err == nil {
		t.Error("Tensor after Close succeeded")
	}
}

// header returns the start of a file: magic, version, counts.
func header(version uint32, nTensors, nKV uint64) []byte {
	b := []byte("GGUF")
	b = binary.LittleEndian.AppendUint32(b, version)
	b = binary.LittleEndian.AppendUint64(b, nTensors)
	return binary.LittleEndian.AppendUint64(b, nKV)
}

func appendStr(b []byte, s string) []byte {
	return append(binary.LittleEndian.AppendUint64(b, uint64(len(s))), s...)
}

func tensorInfo(b []byte, name string, typ GGMLType, off uint64, dims ...uint64) []byte {
	b = appendStr(b, name)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(dims)))
	for _, d := range dims {
		b = binary.LittleEndian.AppendUint64(b, d)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(typ))
	return binary.LittleEndian.AppendUint64(b, off)
}

func withData(b []byte, n int) []byte {
	b = append(b, make([]byte, int(alignUp(uint64(len(b)), 32))-len(b))...)
	return append(b, make([]byte, n)...)
}

func TestHostile(t *testing.T) {
	le := binary.LittleEndian
	kv := func(key string, typ ValueType, payload ...byte) []byte {
		b := appendStr(header(3, 0, 1), key)
		b = le.AppendUint32(b, uint32(typ))
		return append(b, payload...)
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "bad magic"},
		{"magic", []byte("GGUX\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), "bad magic"},
		{"v1", header(1, 0, 0), "version 1"},
		{"v4", header(4, 0, 0), "unsupported GGUF version 4"},
		{"big-endian", header(3<<24, 0, 0), "big-endian"},
		{"kv count", header(3, 0, 1<<40), "metadata count"},
		{"tensor count", header(3, math.MaxUint64, 0), "tensor count"},
		{"truncated", header(3, 0, 1)[:20], "bad magic"},
		{"key length", append(le.AppendUint64(header(3, 0, 1), 1<<62), make([]byte, 16)...), "string of"},
		{"string length", kv("k", TypeString, le.AppendUint64(nil, 1<<50)...), "string of"},
		{"value type", kv("k", 13), "unknown metadata value type 13"},
		{"array count", kv("k", TypeArray, le.AppendUint64(le.AppendUint32(nil, uint32(TypeUint64)), 1<<60)...), "array of"},
		{"string array count", kv("k", TypeArray, le.AppendUint64(le.AppendUint32(nil, uint32(TypeString)), 1<<60)...), "array of"},
		{"array elem type", kv("k", TypeArray, le.AppendUint64(le.AppendUint32(nil, 99), 0)...), "unknown array element type 99"},
		{"bool", kv("k", TypeBool, 2), "neither 0 nor 1"},
		{"bool array", kv("k", TypeArray, append(le.AppendUint64(le.AppendUint32(nil, uint32(TypeBool)), 2), 1, 3)...), "neither 0 nor 1"},
		{"string in array", kv("k", TypeArray, le.AppendUint64(le.AppendUint64(le.AppendUint32(nil, uint32(TypeString)), 1), 1<<40)...), "string of"},
		{"nesting", kv("k", TypeArray, bytes.Repeat(le.AppendUint64(le.AppendUint32(nil, uint32(TypeArray)), 1), 40)...), "nested deeper"},
		{"duplicate key", append(append(appendStr(header(3, 0, 2), "k"), 0, 0, 0, 0, 1), append(appendStr(nil, "k"), 0, 0, 0, 0, 1)...), "duplicate metadata key"},
		{"alignment type", kv("general.alignment", TypeUint64, le.AppendUint64(nil, 32)...), "general.alignment must be"},
		{"alignment zero", kv("general.alignment", TypeUint32, 0, 0, 0, 0), "general.alignment must be"},
		{"alignment odd", kv("general.alignment", TypeUint32, 24, 0, 0, 0), "general.alignment must be"},
		{"dims", withData(tensorInfo(header(3, 1, 0), "t", F32, 0, 1, 1, 1, 1, 1), 4), "5 dimensions"},
		{"shape overflow", withData(tensorInfo(header(3, 1, 0), "t", F32, 0, 1<<32, 1<<32), 4), "overflows"},
		{"dim overflow", withData(tensorInfo(header(3, 1, 0), "t", F32, 0, 1<<63), 4), "overflows"},
		{"size overflow", withData(tensorInfo(header(3, 1, 0), "t", F64, 0, 1<<61), 4), "overflows"},
		{"type", withData(tensorInfo(header(3, 1, 0), "t", 4, 0, 1), 4), "unknown ggml type 4"},
		{"block", withData(tensorInfo(header(3, 1, 0), "t", Q8_0, 0, 33), 64), "whole number"},
		{"misaligned", withData(tensorInfo(header(3, 1, 0), "t", F32, 4, 1), 64), "not a multiple of the alignment"},
		{"past end", withData(tensorInfo(header(3, 1, 0), "t", F32, 0, 100), 64), "past the end"},
		{"offset past end", withData(tensorInfo(header(3, 1, 0), "t", F32, 1<<40, 1), 64), "past the end"},
		{"no data", tensorInfo(header(3, 1, 0), "t", F32, 0, 1), "past the end"},
		{"overlap", withData(tensorInfo(tensorInfo(header(3, 2, 0), "t", F32, 0, 16), "u", F32, 32, 16), 128), `tensor "u" overlaps tensor "t"`},
		{"duplicate tensor", withData(tensorInfo(tensorInfo(header(3, 2, 0), "t", F32, 0, 1), "t", F32, 32, 1), 64), "duplicate tensor name"},
	}
	for _, c := range cases {
		_, err := Parse(c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	// Every truncation of a valid file is refused (or, cut inside the last
	// tensor's padding, still valid), and never panics.
	b := sample(t, 0)
	for n := range len(b) {
		if f, err := Parse(b[:n]); err == nil && n < len(b)-int(DefaultAlignment) {
			t.Fatalf("truncated to %d bytes: accepted (%d tensors)", n, len(f.Tensors()))
		}
	}
}

func TestWriterErrors(t *testing.T) {
	for name, build := range map[string]func(w *Writer){
		"go type":    func(w *Writer) { w.Set("k", 3) },
		"value list": func(w *Writer) { w.Set("k", []Value{{typ: TypeUint8, x: uint8(1)}}) },
		"alignment":  func(w *Writer) { w.Set("general.alignment", uint32(3)) },
		"data size":  func(w *Writer) { w.AddTensor("t", F32, []uint64{2}, make([]byte, 4)) },
		"block":      func(w *Writer) { w.AddTensor("t", Q4_0, []uint64{16}, make([]byte, 9)) },
		"duplicate": func(w *Writer) {
			w.AddTensor("t", F32, []uint64{1}, make([]byte, 4))
			w.AddTensor("t", F32, []uint64{1}, make([]byte, 4))
		},
	} {
		w := NewWriter()
		build(w)
		if _, err := w.WriteTo(&bytes.Buffer{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestTypeSizes(t *testing.T) {
	for typ, want := range map[GGMLType][2]int{F32: {1, 4}, F16: {1, 2}, Q4_0: {32, 18}, Q4_1: {32, 20},
		Q5_0: {32, 22}, Q5_1: {32, 24}, Q8_0: {32, 34}, Q2_K: {256, 84}, Q3_K: {256, 110}, Q4_K: {256, 144},
		Q5_K: {256, 176}, Q6_K: {256, 210}, Q8_K: {256, 292}, BF16: {1, 2}} {
		if typ.BlockSize() != want[0] || typ.BlockBytes() != want[1] {
			t.Errorf("%s: block %d/%d bytes, want %v", typ, typ.BlockSize(), typ.BlockBytes(), want)
		}
	}
	if GGMLType(4).String() != "GGMLType(4)" || Q6_K.String() != "Q6_K" {
		t.Error("String")
	}
}

func FuzzRead(f *testing.F) {
	f.Add(sample(f, 0))
	f.Add(sample(f, 64))
	w := NewWriter()
	w.Set("tokenizer.ggml.tokens", []string{"a", "b"})
	var buf bytes.Buffer
	w.WriteTo(&buf)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Parse(b)
		if err != nil {
			return
		}
		for _, ti := range g.Tensors() {
			tn, err := g.Tensor(ti.Name)
			if err != nil || uint64(len(tn.Data)) != ti.Size {
				t.Fatalf("tensor %q: %v", ti.Name, err)
			}
		}
		for _, k := range g.Keys() {
			g.String(k)
			g.Uint32(k)
			g.Strings(k)
			v, _ := g.Value(k)
			v.Interface()
			if a, err := g.StringArray(k); err == nil {
				n := 0
				for range a.All() {
					n++
				}
				if n != a.Len() {
					t.Fatalf("key %q: %d strings of %d", k, n, a.Len())
				}
			}
		}
	})
}
