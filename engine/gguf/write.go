package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Writer builds a GGUF version 3 file: metadata in the order first set, then
// tensors in the order added, each aligned to general.alignment (default 32).
// Errors are kept and reported by WriteTo.
type Writer struct {
	keys    []string
	kv      map[string]Value
	tensors []TensorInfo
	data    [][]byte
	names   map[string]bool
	err     error
}

// NewWriter returns an empty Writer.
func NewWriter() *Writer {
	return &Writer{kv: map[string]Value{}, names: map[string]bool{}}
}

// Set sets key to x: a Value or a Go value that ValueOf accepts. Setting a key
// again replaces its value in place.
func (w *Writer) Set(key string, x any) {
	v, err := ValueOf(x)
	if err != nil {
		w.fail(fmt.Errorf("key %q: %w", key, err))
		return
	}
	if _, ok := w.kv[key]; !ok {
		w.keys = append(w.keys, key)
	}
	w.kv[key] = v
}

// AddTensor adds a tensor whose data is already encoded in type t.
func (w *Writer) AddTensor(name string, t GGMLType, dims []uint64, data []byte) {
	info := TensorInfo{Name: name, Type: t, Dims: append([]uint64(nil), dims...)}
	n := info.Elements()
	size, ok := t.RowBytes(n)
	switch {
	case w.names[name]:
		w.fail(fmt.Errorf("duplicate tensor %q", name))
	case len(dims) > maxDims:
		w.fail(fmt.Errorf("tensor %q has %d dimensions (at most %d)", name, len(dims), maxDims))
	case !ok || (len(dims) > 0 && dims[0]%uint64(t.BlockSize()) != 0):
		w.fail(fmt.Errorf("tensor %q: shape %v does not fit type %s", name, dims, t))
	case uint64(len(data)) != size:
		w.fail(fmt.Errorf("tensor %q: %d bytes of data, want %d", name, len(data), size))
	}
	info.Size = size
	w.names[name] = true
	w.tensors = append(w.tensors, info)
	w.data = append(w.data, data)
}

func (w *Writer) fail(err error) {
	if w.err == nil {
		w.err = fmt.Errorf("gguf: %w", err)
	}
}

func (w *Writer) alignment() (uint64, error) {
	v, ok := w.kv["general.alignment"]
	if !ok {
		return DefaultAlignment, nil
	}
	a, isU32 := v.x.(uint32)
	if !isU32 || a == 0 || a&(a-1) != 0 {
		return 0, errors.New("gguf: general.alignment must be a uint32 power of two")
	}
	return uint64(a), nil
}

// WriteFile writes the file to path.
func (w *Writer) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := w.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteTo writes the file to out.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	align, err := w.alignment()
	if err != nil {
		return 0, err
	}
	e := &encoder{w: bufio.NewWriterSize(out, 1<<16)}
	e.raw([]byte(magic))
	e.u32(3)
	e.u64(uint64(len(w.tensors)))
	e.u64(uint64(len(w.keys)))
	for _, k := range w.keys {
		e.str(k)
		v := w.kv[k]
		e.u32(uint32(v.typ))
		e.value(v)
	}
	off := uint64(0)
	for i := range w.tensors {
		t := &w.tensors[i]
		t.Offset = off
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(t.Offset)
		off = alignUp(off+t.Size, align)
	}
	e.pad(align)
	for _, d := range w.data {
		e.raw(d)
		e.pad(align)
	}
	if e.err == nil {
		e.err = e.w.Flush()
	}
	return e.n, e.err
}

type encoder struct {
	w   *bufio.Writer
	n   int64
	err error
	buf [8]byte
}

func (e *encoder) raw(p []byte) {
	if e.err != nil {
		return
	}
	n, err := e.w.Write(p)
	e.n += int64(n)
	e.err = err
}

// pad writes zeros up to the next multiple of align.
func (e *encoder) pad(align uint64) {
	var zero [64]byte
	for n := alignUp(uint64(e.n), align) - uint64(e.n); n > 0; {
		k := min(n, uint64(len(zero)))
		e.raw(zero[:k])
		n -= k
	}
}

func (e *encoder) u8(x uint8) { e.buf[0] = x; e.raw(e.buf[:1]) }
func (e *encoder) u16(x uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], x)
	e.raw(e.buf[:2])
}
func (e *encoder) u32(x uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], x)
	e.raw(e.buf[:4])
}
func (e *encoder) u64(x uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], x)
	e.raw(e.buf[:8])
}
func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err == nil {
		n, err := e.w.WriteString(s)
		e.n += int64(n)
		e.err = err
	}
}

func (e *encoder) boolean(b bool) {
	if b {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

func (e *encoder) value(v Value) {
	switch x := v.x.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		e.boolean(x)
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case rawArray:
		e.u32(uint32(v.elem))
		e.raw(x.b)
	default:
		e.u32(uint32(v.elem))
		e.u64(uint64(v.Len()))
		e.array(v.x)
	}
}

func (e *encoder) array(x any) {
	switch x := x.(type) {
	case []uint8:
		e.raw(x)
	case []int8:
		for _, y := range x {
			e.u8(uint8(y))
		}
	case []uint16:
		for _, y := range x {
			e.u16(y)
		}
	case []int16:
		for _, y := range x {
			e.u16(uint16(y))
		}
	case []uint32:
		for _, y := range x {
			e.u32(y)
		}
	case []int32:
		for _, y := range x {
			e.u32(uint32(y))
		}
	case []float32:
		for _, y := range x {
			e.u32(math.Float32bits(y))
		}
	case []bool:
		for _, y := range x {
			e.boolean(y)
		}
	case []string:
		for _, y := range x {
			e.str(y)
		}
	case []uint64:
		for _, y := range x {
			e.u64(y)
		}
	case []int64:
		for _, y := range x {
			e.u64(uint64(y))
		}
	case []float64:
		for _, y := range x {
			e.u64(math.Float64bits(y))
		}
	case []Value:
		for _, y := range x {
			e.value(y)
		}
	}
}
