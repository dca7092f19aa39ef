package gguf

import (
	"errors"
	"fmt"
	"math"
)

// Value is one metadata value: a scalar or an array (possibly of arrays).
//
// Scalars hold the Go type of the same name (uint8 .. float64, bool, string);
// arrays hold a slice of it ([]uint32, []string, ...), and arrays of arrays hold
// []Value. Arrays read from a file stay encoded in it until asked for.
type Value struct {
	typ  ValueType
	elem ValueType // element type, for arrays
	x    any       // rawArray for an array read from a file
}

// rawArray is an array as the file encodes it, count first, already checked
// by Parse.
type rawArray struct {
	n int
	b []byte
}

// decode returns the array as ValueOf would hold it.
func (a rawArray) decode(elem ValueType) any {
	r := &reader{b: a.b}
	return r.array(elem, 0)
}

// Type is the value's type.
func (v Value) Type() ValueType { return v.typ }

// Elem is the element type of an array.
func (v Value) Elem() ValueType { return v.elem }

// Interface returns the Go value held. An array read from a file is decoded
// into a new slice at each call.
func (v Value) Interface() any {
	if a, ok := v.x.(rawArray); ok {
		return a.decode(v.elem)
	}
	return v.x
}

// ValueOf wraps a Go value for the Writer: the fixed-size numeric types, bool,
// string, slices of these, a Value, or []Value of arrays with one element type.
func ValueOf(x any) (Value, error) {
	switch x := x.(type) {
	case Value:
		return x, nil
	case uint8:
		return Value{typ: TypeUint8, x: x}, nil
	case int8:
		return Value{typ: TypeInt8, x: x}, nil
	case uint16:
		return Value{typ: TypeUint16, x: x}, nil
	case int16:
		return Value{typ: TypeInt16, x: x}, nil
	case uint32:
		return Value{typ: TypeUint32, x: x}, nil
	case int32:
		return Value{typ: TypeInt32, x: x}, nil
	case float32:
		return Value{typ: TypeFloat32, x: x}, nil
	case bool:
		return Value{typ: TypeBool, x: x}, nil
	case string:
		return Value{typ: TypeString, x: x}, nil
	case uint64:
		return Value{typ: TypeUint64, x: x}, nil
	case int64:
		return Value{typ: TypeInt64, x: x}, nil
	case float64:
		return Value{typ: TypeFloat64, x: x}, nil
	case []uint8:
		return array(TypeUint8, x), nil
	case []int8:
		return array(TypeInt8, x), nil
	case []uint16:
		return array(TypeUint16, x), nil
	case []int16:
		return array(TypeInt16, x), nil
	case []uint32:
		return array(TypeUint32, x), nil
	case []int32:
		return array(TypeInt32, x), nil
	case []float32:
		return array(TypeFloat32, x), nil
	case []bool:
		return array(TypeBool, x), nil
	case []string:
		return array(TypeString, x), nil
	case []uint64:
		return array(TypeUint64, x), nil
	case []int64:
		return array(TypeInt64, x), nil
	case []float64:
		return array(TypeFloat64, x), nil
	case []Value:
		for _, e := range x {
			if e.typ != TypeArray {
				return Value{}, errors.New("gguf: []Value must hold arrays (use a typed slice for scalars)")
			}
		}
		return array(TypeArray, x), nil
	}
	return Value{}, fmt.Errorf("gguf: no metadata type for Go type %T", x)
}

func array(elem ValueType, x any) Value { return Value{typ: TypeArray, elem: elem, x: x} }

// Len is the number of elements of an array, 0 for a scalar.
func (v Value) Len() int {
	switch x := v.x.(type) {
	case rawArray:
		return x.n
	case []uint8:
		return len(x)
	case []int8:
		return len(x)
	case []uint16:
		return len(x)
	case []int16:
		return len(x)
	case []uint32:
		return len(x)
	case []int32:
		return len(x)
	case []float32:
		return len(x)
	case []bool:
		return len(x)
	case []string:
		return len(x)
	case []uint64:
		return len(x)
	case []int64:
		return len(x)
	case []float64:
		return len(x)
	case []Value:
		return len(x)
	}
	return 0
}

// integer returns an integer scalar as int64, or as uint64 when it does not fit.
func (v Value) integer() (i int64, u uint64, big, ok bool) {
	switch x := v.x.(type) {
	case uint8:
		return int64(x), 0, false, true
	case int8:
		return int64(x), 0, false, true
	case uint16:
		return int64(x), 0, false, true
	case int16:
		return int64(x), 0, false, true
	case uint32:
		return int64(x), 0, false, true
	case int32:
		return int64(x), 0, false, true
	case int64:
		return x, 0, false, true
	case uint64:
		if x > math.MaxInt64 {
			return 0, x, true, true
		}
		return int64(x), 0, false, true
	}
	return 0, 0, false, false
}
