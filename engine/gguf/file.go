package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"
	"os"
)

// ErrMissing is wrapped by the accessors' errors when a key or tensor is absent.
var ErrMissing = errors.New("not present")

// DefaultAlignment is the data alignment when general.alignment is absent.
const DefaultAlignment = 32

// TensorInfo describes one tensor.
type TensorInfo struct {
	Name   string
	Type   GGMLType
	Dims   []uint64 // ggml order: Dims[0] varies fastest
	Offset uint64   // from the start of the data section
	Size   uint64   // bytes
}

// Elements is the number of elements (the product of Dims).
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Tensor is a tensor's info and its raw data.
type Tensor struct {
	TensorInfo
	// Data is a slice of the mapped file: read-only, and invalid after Close.
	Data []byte
}

// File is a parsed GGUF file. Its methods are safe for concurrent use.
type File struct {
	Version    uint32
	Alignment  uint64
	DataOffset uint64 // where the data section starts in the file

	keys    []string
	kv      map[string]Value
	tensors []TensorInfo
	byName  map[string]int
	data    []byte // the data section
	unmap   func() error
	closed  bool
}

// Open maps the file at path into memory (reading it where mmap is unavailable)
// and parses it. Close releases the mapping.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < headerSize {
		return nil, fmt.Errorf("gguf: %s: file of %d bytes is too small", path, size)
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("gguf: %s: file too large", path)
	}
	b, unmap, err := mapFile(fd, int(size))
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", path, err)
	}
	f, err := Parse(b)
	if err != nil {
		unmap()
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	f.unmap = unmap
	return f, nil
}

// Close releases the file's mapping. Tensor data must not be used afterwards.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap = nil
	f.data = nil
	f.closed = true
	return err
}

// Keys lists the metadata keys in file order.
func (f *File) Keys() []string { return f.keys }

// Value returns the metadata value of key. An array refers to the file's
// bytes, which for a mapped file are invalid after Close.
func (f *File) Value(key string) (Value, bool) {
	v, ok := f.kv[key]
	return v, ok
}

func (f *File) get(key string, want ValueType) (Value, error) {
	v, ok := f.kv[key]
	if !ok {
		return v, fmt.Errorf("gguf: key %q: %w", key, ErrMissing)
	}
	if v.typ != want {
		return v, typeError(key, v, want.String())
	}
	return v, nil
}

func typeError(key string, v Value, want string) error {
	have := v.typ.String()
	if v.typ == TypeArray {
		have = "array of " + v.elem.String()
	}
	return fmt.Errorf("gguf: key %q is %s, not %s", key, have, want)
}

// String returns a string value.
func (f *File) String(key string) (string, error) {
	v, err := f.get(key, TypeString)
	if err != nil {
		return "", err
	}
	return v.x.(string), nil
}

// Bool returns a bool value.
func (f *File) Bool(key string) (bool, error) {
	v, err := f.get(key, TypeBool)
	if err != nil {
		return false, err
	}
	return v.x.(bool), nil
}

// Int64 returns an integer value of any integer type that fits in an int64.
func (f *File) Int64(key string) (int64, error) {
	v, ok := f.kv[key]
	if !ok {
		return 0, fmt.Errorf("gguf: key %q: %w", key, ErrMissing)
	}
	i, _, big, isInt := v.integer()
	if !isInt {
		return 0, typeError(key, v, "an integer")
	}
	if big {
		return 0, fmt.Errorf("gguf: key %q: value out of range", key)
	}
	return i, nil
}

// Uint32 returns an integer value of any integer type that fits in a uint32.
func (f *File) Uint32(key string) (uint32, error) {
	i, err := f.Int64(key)
	if err != nil {
		return 0, err
	}
	if i < 0 || i > math.MaxUint32 {
		return 0, fmt.Errorf("gguf: key %q: %d is out of range for uint32", key, i)
	}
	return uint32(i), nil
}

// Uint64 returns a non-negative integer value of any integer type.
func (f *File) Uint64(key string) (uint64, error) {
	v, ok := f.kv[key]
	if !ok {
		return 0, fmt.Errorf("gguf: key %q: %w", key, ErrMissing)
	}
	i, u, big, isInt := v.integer()
	switch {
	case !isInt:
		return 0, typeError(key, v, "an integer")
	case big:
		return u, nil
	case i < 0:
		return 0, fmt.Errorf("gguf: key %q: %d is negative", key, i)
	}
	return uint64(i), nil
}

// Float32 returns a float32 value (a float64 is narrowed).
func (f *File) Float32(key string) (float32, error) {
	v, ok := f.kv[key]
	if !ok {
		return 0, fmt.Errorf("gguf: key %q: %w", key, ErrMissing)
	}
	switch x := v.x.(type) {
	case float32:
		return x, nil
	case float64:
		return float32(x), nil
	}
	return 0, typeError(key, v, "float32")
}

func (f *File) array(key string, elem ValueType) (rawArray, error) {
	v, err := f.get(key, TypeArray)
	if err == nil && v.elem != elem {
		err = typeError(key, v, "array of "+elem.String())
	}
	if err != nil {
		return rawArray{}, err
	}
	return v.x.(rawArray), nil
}

func arrayOf[T any](f *File, key string, elem ValueType) ([]T, error) {
	a, err := f.array(key, elem)
	if err != nil {
		return nil, err
	}
	return a.decode(elem).([]T), nil
}

// Strings returns an array of strings, decoded into a new slice at each call
// (StringArray reads one without copying it).
func (f *File) Strings(key string) ([]string, error) { return arrayOf[string](f, key, TypeString) }

// Float32s returns an array of float32, decoded into a new slice at each call.
func (f *File) Float32s(key string) ([]float32, error) { return arrayOf[float32](f, key, TypeFloat32) }

// Int32s returns an array of int32, decoded into a new slice at each call.
func (f *File) Int32s(key string) ([]int32, error) { return arrayOf[int32](f, key, TypeInt32) }

// Uint32s returns an array of uint32, decoded into a new slice at each call.
func (f *File) Uint32s(key string) ([]uint32, error) { return arrayOf[uint32](f, key, TypeUint32) }

// StringArray is an array of strings as the file stores them, to be read
// without a copy of each (a vocabulary's tokens and merges).
type StringArray struct{ a rawArray }

// StringArray returns an array of strings for reading in place.
func (f *File) StringArray(key string) (StringArray, error) {
	a, err := f.array(key, TypeString)
	return StringArray{a}, err
}

// Len is the number of strings.
func (s StringArray) Len() int { return s.a.n }

// All yields each string's index and bytes. The bytes are the file's: do not
// modify them, and copy what is kept (those of a mapped file are invalid
// after Close).
func (s StringArray) All() iter.Seq2[int, []byte] {
	return func(yield func(int, []byte) bool) {
		if s.a.n == 0 {
			return
		}
		b := s.a.b[8:] // past the count
		for i := range s.a.n {
			n := binary.LittleEndian.Uint64(b)
			if !yield(i, b[8:8+n:8+n]) {
				return
			}
			b = b[8+n:]
		}
	}
}

// Tensors lists the tensor infos in file order.
func (f *File) Tensors() []TensorInfo { return f.tensors }

// Tensor returns the named tensor with its data.
func (f *File) Tensor(name string) (Tensor, error) {
	i, ok := f.byName[name]
	if !ok {
		return Tensor{}, fmt.Errorf("gguf: tensor %q: %w", name, ErrMissing)
	}
	if f.closed {
		return Tensor{}, fmt.Errorf("gguf: tensor %q: file is closed", name)
	}
	t := f.tensors[i]
	return Tensor{TensorInfo: t, Data: f.data[t.Offset : t.Offset+t.Size : t.Offset+t.Size]}, nil
}
