// The twin of bench/pool/poolbench.c in Go 1.19: get+put of a 256-byte
// object through sync.Pool, single goroutine and 2 goroutines (each on its
// own P with GOMAXPROCS=2), ns per pair; then the two shapes that reach
// the shared poolChain: "4 held" (four objects taken before any is given
// back), "handoff" (each goroutine gets from one pool and puts into the
// other, so every get steals or misses) and "relay" (the same with 256
// objects put in at the start and no New: a Get that finds nothing
// yields and tries again).
//
// Usage: go run . [millions of get+put per goroutine, default 50]
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

func newPool() *sync.Pool {
	return &sync.Pool{New: func() any { return new([256]byte) }}
}

var pool, held, ping, pong = newPool(), newPool(), newPool(), newPool()
var relayA, relayB = &sync.Pool{}, &sync.Pool{}

const relayObjects = 256

func loop(n int, _ int) float64 {
	t0 := time.Now()
	for i := 0; i < n; i++ {
		p := pool.Get().(*[256]byte)
		p[0] = byte(i)
		pool.Put(p)
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func loopHeld(n int, _ int) float64 {
	t0 := time.Now()
	var p [4]*[256]byte
	for i := 0; i < n; i += 4 {
		for k := range p {
			p[k] = held.Get().(*[256]byte)
			p[k][0] = byte(i)
		}
		for k := range p {
			held.Put(p[k])
		}
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func loopHandoff(n int, index int) float64 {
	in, out := ping, pong
	if index == 1 {
		in, out = pong, ping
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		p := in.Get().(*[256]byte)
		p[0] = byte(i)
		out.Put(p)
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func loopRelay(n int, index int) float64 {
	in, out := relayA, relayB
	if index == 1 {
		in, out = relayB, relayA
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		var p *[256]byte
		for tries := 0; p == nil; tries++ {
			if x := in.Get(); x != nil {
				p = x.(*[256]byte)
			} else if tries < 10000 {
				runtime.Gosched()
			} else {
				p = new([256]byte) // a collection emptied the pools
			}
		}
		p[0] = byte(i)
		out.Put(p)
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func two(n int, fn func(int, int) float64) float64 {
	var wg sync.WaitGroup
	ns := make([]float64, 2)
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ns[g] = fn(n, g)
		}(g)
	}
	wg.Wait()
	return (ns[0] + ns[1]) / 2
}

func main() {
	millions := 50
	if len(os.Args) > 1 {
		if m, err := strconv.Atoi(os.Args[1]); err == nil {
			millions = m
		}
	}
	n := millions * 1000000
	fmt.Printf("%-24s 1 thread  %7.2f ns per pair\n", "Go sync.Pool Get+Put", loop(n, 0))
	fmt.Printf("%-24s 1 thread  %7.2f ns per pair\n", "Go sync.Pool 4 held", loopHeld(n, 0))
	fmt.Printf("%-24s 2 threads %7.2f ns per pair\n", "Go sync.Pool Get+Put", two(n, loop))
	fmt.Printf("%-24s 2 threads %7.2f ns per pair\n", "Go sync.Pool 4 held", two(n, loopHeld))
	fmt.Printf("%-24s 2 threads %7.2f ns per pair\n", "Go sync.Pool handoff", two(n, loopHandoff))
	for i := 0; i < relayObjects; i++ {
		if i%2 == 1 {
			relayA.Put(new([256]byte))
		} else {
			relayB.Put(new([256]byte))
		}
	}
	fmt.Printf("%-24s 2 threads %7.2f ns per pair\n", "Go sync.Pool relay", two(n, loopRelay))
}
