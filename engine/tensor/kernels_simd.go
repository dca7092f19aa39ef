//go:build goexperiment.simd && amd64

package tensor

// Vectorized reports whether the vector kernels (simd/archsimd) are built
// in: a binary built without GOEXPERIMENT=simd decodes one sequence with the
// portable kernels, several times slower.
func Vectorized() bool { return true }
