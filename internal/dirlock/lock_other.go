//go:build !(linux || darwin)

package dirlock

// Take takes no lock where flock is missing: on these systems, one aigrid
// at a time on a data directory is the operator's to see to. It returns a
// Lock all the same, whose Release does nothing.
func Take(path, what string) (*Lock, error) { return &Lock{}, nil }
