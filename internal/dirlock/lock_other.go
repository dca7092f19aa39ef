//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package dirlock

// Take locks by the lock file's being there, where flock is missing (see
// takeFile).
func Take(path, what string) (*Lock, error) { return takeFile(path, what) }
