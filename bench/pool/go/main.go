// The twin of bench/pool/poolbench.c in Go 1.19: get+put of a 256-byte
// object through sync.Pool, single goroutine and 2 goroutines (each on its
// own P with GOMAXPROCS=2), ns per pair.
//
// Usage: go run . [millions of get+put per goroutine, default 50]
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

var pool = sync.Pool{New: func() any { return new([256]byte) }}

func loop(n int) float64 {
	t0 := time.Now()
	for i := 0; i < n; i++ {
		p := pool.Get().(*[256]byte)
		p[0] = byte(i)
		pool.Put(p)
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func main() {
	millions := 50
	if len(os.Args) > 1 {
		if m, err := strconv.Atoi(os.Args[1]); err == nil {
			millions = m
		}
	}
	n := millions * 1000000
	fmt.Printf("%-24s 1 thread  %7.2f ns per pair\n", "Go sync.Pool Get+Put", loop(n))
	var wg sync.WaitGroup
	ns := make([]float64, 2)
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ns[g] = loop(n)
		}(g)
	}
	wg.Wait()
	fmt.Printf("%-24s 2 threads %7.2f ns per pair\n", "Go sync.Pool Get+Put", (ns[0]+ns[1])/2)
}
