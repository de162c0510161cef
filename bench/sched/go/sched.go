// The scheduler's benchmarks, Go's side: the same workloads as
// bench/sched/sched.c, printing the same lines.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func spawn(n int) {
	t0 := time.Now()
	for i := 0; i < n; i += 1000 {
		var wg sync.WaitGroup
		wg.Add(1000)
		for j := 0; j < 1000; j++ {
			go wg.Done()
		}
		wg.Wait()
	}
	fmt.Printf("spawn ns_per_goroutine %.1f ns\n", float64(time.Since(t0).Nanoseconds())/float64(n))
}

func yield(n int) {
	runtime.GOMAXPROCS(1)
	var wg sync.WaitGroup
	wg.Add(2)
	t0 := time.Now()
	for k := 0; k < 2; k++ {
		go func() {
			for i := 0; i < n; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	fmt.Printf("yield ns_per_yield %.1f ns\n", float64(time.Since(t0).Nanoseconds())/float64(2*n))
}

func skynetNode(num, size int, sum *int64, wg *sync.WaitGroup) {
	if size == 1 {
		atomic.AddInt64(sum, int64(num))
	} else {
		var kids sync.WaitGroup
		kids.Add(10)
		sz := size / 10
		for i := 0; i < 10; i++ {
			go skynetNode(num+i*sz, sz, sum, &kids)
		}
		kids.Wait()
	}
	wg.Done()
}

func peakRSS() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func rss() int64 {
	b, _ := os.ReadFile("/proc/self/statm")
	var size, res int64
	fmt.Sscan(string(b), &size, &res)
	return res * int64(os.Getpagesize())
}

func skynet(n int) {
	var sum int64
	var wg sync.WaitGroup
	wg.Add(1)
	t0 := time.Now()
	go skynetNode(0, n, &sum, &wg)
	wg.Wait()
	s := time.Since(t0).Seconds()
	if sum != int64(n)*int64(n-1)/2 {
		fmt.Fprintln(os.Stderr, "skynet: wrong sum", sum)
		os.Exit(1)
	}
	fmt.Printf("skynet time %.3f s\nskynet peak_rss %.1f MiB\n", s, peakRSS())
}

func idle(n int) {
	rss0 := rss()
	var started, finished sync.WaitGroup
	gate := make(chan struct{})
	started.Add(n)
	finished.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-gate
			finished.Done()
		}()
	}
	started.Wait()
	fmt.Printf("idle rss_per_goroutine %.0f bytes\n", float64(rss()-rss0)/float64(n))
	close(gate)
	finished.Wait()
}

func sleepers(n, secs int) {
	var stop int32
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			for atomic.LoadInt32(&stop) == 0 {
				time.Sleep(100 * time.Millisecond)
			}
			wg.Done()
		}()
	}
	time.Sleep(200 * time.Millisecond)
	c0 := cpuSeconds()
	time.Sleep(time.Duration(secs) * time.Second)
	used := cpuSeconds() - c0
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	fmt.Printf("sleepers cpu_per_second %.3f s\n", used/float64(secs))
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: sched spawn|yield|skynet|idle|sleepers N [S]")
		os.Exit(2)
	}
	n, _ := strconv.Atoi(os.Args[2])
	switch os.Args[1] {
	case "spawn":
		spawn(n)
	case "yield":
		yield(n)
	case "skynet":
		skynet(n)
	case "idle":
		idle(n)
	case "sleepers":
		secs := 2
		if len(os.Args) > 3 {
			secs, _ = strconv.Atoi(os.Args[3])
		}
		sleepers(n, secs)
	default:
		os.Exit(2)
	}
}
