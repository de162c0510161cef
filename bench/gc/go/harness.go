// The Go version of the collector benchmarks: one program, the workload
// named by its first argument, measured as bench/gc/gcb.h measures the C
// versions (see there):
//
//	cpu_s       user + system time of the process (syscall.Getrusage)
//	wall_s      from the start of the workload to its end
//	maxrss_mib  ru_maxrss
//	cycles      runtime.MemStats.NumGC
//	stw_*       the longest and the 99th-percentile (nearest rank) pause of
//	            a cycle, from the PauseNs ring (read with debug.ReadGCStats,
//	            which does not stop the world, every 10 ms so that the ring
//	            never wraps unread)
//	gap_probe   a goroutine locked to its OS thread sleeps 100 us with the
//	            nanosleep system call in a loop (timer slack 1 ns); the
//	            largest wake-up interval minus the 100 us. Returning from
//	            the system call waits while the world is stopped.
//	gap_mutator the largest interval between two clock readings taken by the
//	            workload itself every 256 steps (allocations, and the steps of
//	            loops that do not allocate: filling, walking, checking)
//
// Usage: gcgo gcbench [D] | bintree [N] | largeheap [LIVE_MIB [R]] | strings [SLOTS [N]]
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	tickEvery = 256
	probeNs   = 100000
)

var (
	base     = time.Now()
	mutCount uint64
	mutLast  int64
	mutMax   int64
)

func nowNs() int64 { return int64(time.Since(base)) } // monotonic

// tick is called before every allocation and at each step of a loop that
// does not allocate.
func tick() {
	mutCount++
	if mutCount&(tickEvery-1) == 0 {
		tickSlow()
	}
}

//go:noinline
func tickSlow() {
	t := nowNs()
	if t-mutLast > mutMax {
		mutMax = t - mutLast
	}
	mutLast = t
}

// splitmix64: the workloads' random numbers, as gcb_rand in bench/gc/gcb.h.
func splitmix(state *uint64) uint64 {
	*state += 0x9E3779B97F4A7C15
	z := *state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func die(msg string) {
	fmt.Fprintf(os.Stderr, "gcbench(go): %s\n", msg)
	os.Exit(2)
}

var (
	stopFlag     int32
	probeMax     int64
	probeWakeups uint64
	probeDone    = make(chan struct{})
	pollDone     = make(chan struct{})
	pauses       []time.Duration
	pausesLost   int64
	pausesSeen   int64
	gcStats      debug.GCStats
)

func probe() {
	runtime.LockOSThread()
	syscall.Syscall6(syscall.SYS_PRCTL, 29 /* PR_SET_TIMERSLACK */, 1, 0, 0, 0, 0)
	prev := nowNs()
	req := syscall.Timespec{Sec: 0, Nsec: probeNs}
	for atomic.LoadInt32(&stopFlag) == 0 {
		syscall.Nanosleep(&req, nil)
		t := nowNs()
		if d := t - prev - probeNs; d > probeMax {
			probeMax = d
		}
		probeWakeups++
		prev = t
	}
	close(probeDone)
}

// pollPauses records the pauses of the cycles completed since its last call.
func pollPauses() {
	debug.ReadGCStats(&gcStats)
	n := gcStats.NumGC - pausesSeen
	if n > int64(len(gcStats.Pause)) {
		pausesLost += n - int64(len(gcStats.Pause))
		n = int64(len(gcStats.Pause))
	}
	pauses = append(pauses, gcStats.Pause[:n]...) // most recent first
	pausesSeen = gcStats.NumGC
}

func poller() {
	for atomic.LoadInt32(&stopFlag) == 0 {
		time.Sleep(10 * time.Millisecond)
		pollPauses()
	}
	close(pollDone)
}

func benchInit() {
	pauses = make([]time.Duration, 0, 1<<16)
	go probe()
	go poller()
	mutLast = nowNs()
	start = mutLast
}

var start int64

func benchFinish(workload string, checksum uint64) {
	end := nowNs()
	tickSlow()
	atomic.StoreInt32(&stopFlag, 1)
	<-probeDone
	<-pollDone
	pollPauses()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := float64(ru.Utime.Sec) + float64(ru.Utime.Usec)/1e6 + float64(ru.Stime.Sec) + float64(ru.Stime.Usec)/1e6
	var stwMax, stwP99 float64
	if len(pauses) > 0 {
		sort.Slice(pauses, func(i, j int) bool { return pauses[i] < pauses[j] })
		rank := (len(pauses)*99 + 99) / 100
		stwMax = float64(pauses[len(pauses)-1]) / 1e6
		stwP99 = float64(pauses[rank-1]) / 1e6
	}
	if os.Getenv("GCB_PAUSES") != "" {
		for i, p := range pauses {
			sep := " "
			if i == len(pauses)-1 {
				sep = "\n"
			}
			fmt.Fprintf(os.Stderr, "%.3f%s", float64(p)/1e6, sep)
		}
	}
	if pausesLost > 0 {
		fmt.Fprintf(os.Stderr, "gcbench(go): %d pauses not recorded\n", pausesLost)
	}
	fmt.Fprintf(os.Stderr, "# %s go: %d pauses recorded, %d probe wake-ups\n", workload, len(pauses), probeWakeups)
	fmt.Printf("%s go %.3f %.3f %.1f %d %.3f %.3f %.3f %.3f %d\n", workload, cpu,
		float64(end-start)/1e9, float64(ru.Maxrss)/1024, ms.NumGC, stwMax, stwP99,
		float64(probeMax)/1e6, float64(mutMax)/1e6, checksum)
}

// uintArgs returns the workload's two numeric arguments, each its default
// where absent; the first must be positive (named first in the message).
func uintArgs(args []string, a, b uint64, first string) (uint64, uint64) {
	if len(args) > 0 {
		a, _ = strconv.ParseUint(args[0], 10, 64)
	}
	if len(args) > 1 {
		b, _ = strconv.ParseUint(args[1], 10, 64)
	}
	if a == 0 {
		die(first + " must be positive")
	}
	return a, b
}

func main() {
	if len(os.Args) < 2 {
		die("usage: gcgo gcbench [D] | bintree [N] | largeheap [LIVE_MIB [R]] | strings [SLOTS [N]]")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "gcbench":
		gcbench(args)
	case "bintree":
		bintree(args)
	case "largeheap":
		largeheap(args)
	case "strings":
		shortStrings(args)
	default:
		die("unknown workload " + os.Args[1])
	}
}
