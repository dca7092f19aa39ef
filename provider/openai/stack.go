package openai

import "sync"

// offStack runs f on a goroutine of its own and waits for it; a panic in f is
// raised again in the caller.
//
// A stream's handler goroutine keeps its stack for the stream's whole life,
// and the runtime halves a stack only when under a quarter of it is in use.
// Under the handler, dispatch and provider frames (about 5 KiB) the upstream
// exchange's deep steps (encoding the request, dialing and the TLS handshake,
// writing the request, reading the response headers: 2-4 KiB each) would
// double it to 16 KiB for good; on a goroutine of their own they cost a
// short-lived stack instead. The wait for the upstream stays in the caller,
// so that these goroutines live only as long as the work.
func offStack(f func()) {
	var panicked any
	var wg sync.WaitGroup
	wg.Go(func() {
		defer func() { panicked = recover() }()
		f()
	})
	wg.Wait()
	if panicked != nil {
		panic(panicked)
	}
}
