// The large-heap cache: see bench/gc/largeheap.c, which this follows step
// by step (same random numbers in the same order, same slot count).
package main

import (
	"fmt"
	"os"
)

type entry struct {
	key uint64
	val []byte // noscan
}

type slot [3]*entry

const (
	minVal = 64
	maxVal = 1024
	hdr    = 24 // an entry header as counted in the live bytes (the C size)
)

var rng uint64 = 1

func nextRand() uint64 { return splitmix(&rng) }

var liveBytes uint64

func newEntry() *entry {
	key := nextRand()
	n := minVal + nextRand()%(maxVal-minVal+1)
	tick()
	e := &entry{key: key}
	tick()
	v := make([]byte, n)
	v[0] = byte(key)
	for i := 1; i < len(v); i *= 2 { // fill by doubling (memmove)
		copy(v[i:], v[:i])
	}
	e.val = v
	liveBytes += hdr + n
	return e
}

func fillSlot(s *slot) {
	n := 1 + int(nextRand()%3)
	for k := 0; k < 3; k++ {
		if k < n {
			s[k] = newEntry()
		} else {
			s[k] = nil
		}
	}
}

func largeheap(args []string) {
	liveMiB, repl := uintArgs(args, 1024, 4000000, "LIVE_MIB")
	perSlot := uint64(24 + 2*(hdr+(minVal+maxVal)/2))
	nslots := (liveMiB << 20) / perSlot
	benchInit()

	tick()
	table := make([]slot, nslots)
	liveBytes = nslots * 24
	for i := range table {
		fillSlot(&table[i])
	}
	tFilled := nowNs()
	fmt.Fprintf(os.Stderr, "%d slots, %.1f MiB live after the fill (%.2f s)\n", nslots,
		float64(liveBytes)/1048576, float64(tFilled-start)/1e9)

	for r := uint64(0); r < repl; r++ {
		s := &table[nextRand()%nslots]
		old := *s
		fillSlot(s)
		for _, e := range old {
			if e != nil {
				liveBytes -= hdr + uint64(len(e.val))
			}
		}
	}

	var checksum, entries uint64
	for i := range table {
		for _, e := range table[i] {
			if e == nil {
				continue
			}
			tick()
			b, n := byte(e.key), len(e.val)
			if n < minVal || n > maxVal || e.val[0] != b || e.val[n-1] != b || e.val[n/2] != b {
				die("an entry's value was overwritten")
			}
			checksum += e.key ^ uint64(n)
			entries++
		}
	}
	checksum += entries
	fmt.Fprintf(os.Stderr, "%d entries, %.1f MiB live at the end, replacements %.2f s\n", entries,
		float64(liveBytes)/1048576, float64(nowNs()-tFilled)/1e9)
	benchFinish("largeheap", checksum)
}
