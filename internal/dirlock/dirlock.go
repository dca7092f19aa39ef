// Package dirlock keeps a directory to one process at a time: a grid's data
// directory, a meter's journal. Two servers on one data directory would
// apply and delete each other's journal segments, and each keep balances of
// its own.
package dirlock

import "os"

// Lock is a directory held by this process until Release.
type Lock struct{ f *os.File }

// Release lets another process take the directory. A process that dies
// lets go of its locks all the same: the kernel holds them.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
