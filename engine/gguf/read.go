package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"sort"
)

const (
	magic      = "GGUF"
	headerSize = 4 + 4 + 8 + 8
	maxDims    = 4  // ggml's GGML_MAX_DIMS
	maxDepth   = 16 // nesting of arrays of arrays; real files use at most 2
)

// Parse parses a GGUF file held in memory. The File refers to b for tensor data.
//
// Every count and length is checked against the bytes that remain before anything
// is allocated, so a hostile file costs at most a small multiple of its own size.
func Parse(b []byte) (*File, error) {
	r := &reader{b: b}
	if len(b) < headerSize || string(b[:4]) != magic {
		return nil, r.errorf("not a GGUF file (bad magic)")
	}
	r.off = 4
	f := &File{Version: r.u32(), Alignment: DefaultAlignment}
	switch {
	case f.Version == 2 || f.Version == 3:
	case f.Version == 1:
		return nil, r.errorf("GGUF version 1 is not supported")
	case bits.ReverseBytes32(f.Version) <= 3:
		return nil, r.errorf("big-endian GGUF files are not supported")
	default:
		return nil, r.errorf("unsupported GGUF version %d", f.Version)
	}
	nTensors, nKV := r.u64(), r.u64()
	// A key/value needs at least 13 bytes and a tensor info 24.
	if nKV > uint64(r.left())/13 {
		return nil, r.errorf("metadata count %d exceeds what the file can hold", nKV)
	}
	f.kv = make(map[string]Value, nKV)
	f.keys = make([]string, 0, nKV)
	for range nKV {
		key := r.str()
		typ := ValueType(r.u32())
		v := r.value(typ, 0)
		if r.err != nil {
			return nil, r.err
		}
		if _, dup := f.kv[key]; dup {
			return nil, r.errorf("duplicate metadata key %q", key)
		}
		f.kv[key] = v
		f.keys = append(f.keys, key)
	}
	if v, ok := f.kv["general.alignment"]; ok {
		a, isU32 := v.x.(uint32)
		if !isU32 || a == 0 || a&(a-1) != 0 {
			return nil, r.errorf("general.alignment must be a uint32 power of two, got %s %v", v.typ, v.x)
		}
		f.Alignment = uint64(a)
	}

	if nTensors > uint64(r.left())/24 {
		return nil, r.errorf("tensor count %d exceeds what the file can hold", nTensors)
	}
	f.tensors = make([]TensorInfo, nTensors)
	f.byName = make(map[string]int, nTensors)
	for i := range f.tensors {
		t, err := r.tensorInfo(f.Alignment)
		if err != nil {
			return nil, err
		}
		if _, dup := f.byName[t.Name]; dup {
			return nil, r.errorf("duplicate tensor name %q", t.Name)
		}
		f.byName[t.Name] = i
		f.tensors[i] = t
	}

	f.DataOffset = alignUp(uint64(r.off), f.Alignment)
	if f.DataOffset < uint64(len(b)) {
		f.data = b[f.DataOffset:]
	}
	if err := checkLayout(f.tensors, uint64(len(f.data))); err != nil {
		return nil, err
	}
	return f, nil
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// checkLayout refuses tensors that reach past the end of the data or overlap.
func checkLayout(ts []TensorInfo, dataLen uint64) error {
	order := make([]int, len(ts))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return ts[order[a]].Offset < ts[order[b]].Offset })
	end, prev := uint64(0), -1
	for _, i := range order {
		t := ts[i]
		if t.Offset > dataLen || t.Size > dataLen-t.Offset {
			return fmt.Errorf("gguf: tensor %q: data [%d, +%d) lies past the end of the file (data section has %d bytes)",
				t.Name, t.Offset, t.Size, dataLen)
		}
		if t.Offset < end {
			return fmt.Errorf("gguf: tensor %q overlaps tensor %q", t.Name, ts[prev].Name)
		}
		if t.Size > 0 {
			end, prev = t.Offset+t.Size, i
		}
	}
	return nil
}

// reader decodes little-endian values from b, remembering the first error.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) errorf(format string, args ...any) error {
	return fmt.Errorf("gguf: offset %d: %s", r.off, fmt.Sprintf(format, args...))
}

// take returns the next n bytes, or nil (setting r.err) if the file ends first.
func (r *reader) take(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(r.left()) {
		r.err = r.errorf("%s of %d bytes runs past the end of the file (%d bytes left)", what, n, r.left())
		return nil
	}
	p := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return p
}

func (r *reader) u8() uint8 {
	if p := r.take(1, "value"); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if p := r.take(2, "value"); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.take(4, "value"); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if p := r.take(8, "value"); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (r *reader) str() string {
	n := r.u64()
	return string(r.take(n, "string"))
}

// count reads an array length and checks that n elements of at least min bytes fit.
func (r *reader) count(min int) int {
	n := r.u64()
	if r.err == nil && n > uint64(r.left()/min) {
		r.err = r.errorf("array of %d elements exceeds what the file can hold", n)
		return 0
	}
	return int(n)
}

func (r *reader) value(t ValueType, depth int) Value {
	v := Value{typ: t}
	switch t {
	case TypeUint8:
		v.x = r.u8()
	case TypeInt8:
		v.x = int8(r.u8())
	case TypeUint16:
		v.x = r.u16()
	case TypeInt16:
		v.x = int16(r.u16())
	case TypeUint32:
		v.x = r.u32()
	case TypeInt32:
		v.x = int32(r.u32())
	case TypeFloat32:
		v.x = math.Float32frombits(r.u32())
	case TypeBool:
		v.x = r.boolean()
	case TypeString:
		v.x = r.str()
	case TypeUint64:
		v.x = r.u64()
	case TypeInt64:
		v.x = int64(r.u64())
	case TypeFloat64:
		v.x = math.Float64frombits(r.u64())
	case TypeArray:
		if depth >= maxDepth {
			r.fail("arrays nested deeper than %d", maxDepth)
			break
		}
		v.elem = ValueType(r.u32())
		start := r.off
		n := r.skipArray(v.elem, depth)
		if r.err == nil {
			v.x = rawArray{n: n, b: r.b[start:r.off:r.off]}
		}
	default:
		r.fail("unknown metadata value type %d", uint32(t))
	}
	return v
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = r.errorf(format, args...)
	}
}

func (r *reader) boolean() bool {
	switch b := r.u8(); b {
	case 0, 1:
		return b == 1
	default:
		r.fail("bool value %d is neither 0 nor 1", b)
		return false
	}
}

// skipArray checks an array of elem (count and elements) and moves past it,
// returning its length: arrays stay encoded until read, so that a vocabulary
// of a hundred thousand strings costs no memory beside the file's own.
func (r *reader) skipArray(elem ValueType, depth int) int {
	if r.err != nil {
		return 0
	}
	switch elem {
	case TypeString:
		n := r.count(8)
		for range n {
			r.take(r.u64(), "string")
		}
		return n
	case TypeArray:
		n := r.count(12)
		for i := 0; i < n && r.err == nil; i++ {
			r.value(TypeArray, depth+1)
		}
		return n
	case TypeBool:
		n := r.count(1)
		for _, b := range r.take(uint64(n), "array") {
			if b > 1 {
				r.fail("bool value %d is neither 0 nor 1", b)
			}
		}
		return n
	}
	size := elem.size()
	if size == 0 {
		r.fail("unknown array element type %d", uint32(elem))
		return 0
	}
	n := r.count(size)
	r.take(uint64(n)*uint64(size), "array")
	return n
}

func readArray[T any](r *reader, size int, get func(p []byte) T) []T {
	n := r.count(size)
	p := r.take(uint64(n)*uint64(size), "array")
	if p == nil {
		return nil
	}
	s := make([]T, n)
	for i := range s {
		s[i] = get(p[i*size:])
	}
	return s
}

func (r *reader) array(elem ValueType, depth int) any {
	if r.err != nil {
		return nil
	}
	le := binary.LittleEndian
	switch elem {
	case TypeUint8:
		return readArray(r, 1, func(p []byte) uint8 { return p[0] })
	case TypeInt8:
		return readArray(r, 1, func(p []byte) int8 { return int8(p[0]) })
	case TypeUint16:
		return readArray(r, 2, le.Uint16)
	case TypeInt16:
		return readArray(r, 2, func(p []byte) int16 { return int16(le.Uint16(p)) })
	case TypeUint32:
		return readArray(r, 4, le.Uint32)
	case TypeInt32:
		return readArray(r, 4, func(p []byte) int32 { return int32(le.Uint32(p)) })
	case TypeFloat32:
		return readArray(r, 4, func(p []byte) float32 { return math.Float32frombits(le.Uint32(p)) })
	case TypeUint64:
		return readArray(r, 8, le.Uint64)
	case TypeInt64:
		return readArray(r, 8, func(p []byte) int64 { return int64(le.Uint64(p)) })
	case TypeFloat64:
		return readArray(r, 8, func(p []byte) float64 { return math.Float64frombits(le.Uint64(p)) })
	case TypeBool:
		s := readArray(r, 1, func(p []byte) uint8 { return p[0] })
		bs := make([]bool, len(s))
		for i, b := range s {
			if b > 1 {
				r.fail("bool value %d is neither 0 nor 1", b)
				return nil
			}
			bs[i] = b == 1
		}
		return bs
	case TypeString:
		s := make([]string, r.count(8))
		for i := range s {
			s[i] = r.str()
		}
		return s
	case TypeArray:
		s := make([]Value, r.count(12))
		for i := range s {
			s[i] = r.value(TypeArray, depth+1)
		}
		return s
	}
	r.fail("unknown array element type %d", uint32(elem))
	return nil
}

func (r *reader) tensorInfo(align uint64) (TensorInfo, error) {
	t := TensorInfo{Name: r.str()}
	nDims := r.u32()
	if r.err == nil && nDims > maxDims {
		return t, r.errorf("tensor %q has %d dimensions (at most %d)", t.Name, nDims, maxDims)
	}
	t.Dims = make([]uint64, nDims)
	n := uint64(1)
	for i := range t.Dims {
		d := r.u64()
		hi, lo := bits.Mul64(n, d)
		if r.err == nil && (d > maxInt64 || hi != 0 || lo > maxInt64) {
			return t, r.errorf("tensor %q: shape %v overflows", t.Name, t.Dims[:i+1])
		}
		t.Dims[i], n = d, lo
	}
	t.Type = GGMLType(r.u32())
	t.Offset = r.u64()
	if r.err != nil {
		return t, r.err
	}
	ti, ok := ggmlTypes[t.Type]
	if !ok {
		return t, r.errorf("tensor %q has unknown ggml type %d", t.Name, uint32(t.Type))
	}
	if len(t.Dims) > 0 && t.Dims[0]%uint64(ti.blockSize) != 0 {
		return t, r.errorf("tensor %q: row of %d elements is not a whole number of %s blocks of %d",
			t.Name, t.Dims[0], ti.name, ti.blockSize)
	}
	size, ok := t.Type.RowBytes(n)
	if !ok {
		return t, r.errorf("tensor %q: size of shape %v overflows", t.Name, t.Dims)
	}
	t.Size = size
	if t.Offset%align != 0 {
		return t, r.errorf("tensor %q: offset %d is not a multiple of the alignment %d", t.Name, t.Offset, align)
	}
	return t, nil
}
