// Short strings: see bench/gc/strings.c, which this follows step by step
// (same random numbers in the same order).
package main

import "strconv"

var sRng uint64 = 7

func sNextRand() uint64 {
	sRng += 0x9E3779B97F4A7C15
	z := sRng
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func shortStrings(args []string) {
	slots, n := uint64(65536), uint64(20000000)
	if len(args) > 0 {
		slots, _ = strconv.ParseUint(args[0], 10, 64)
	}
	if len(args) > 1 {
		n, _ = strconv.ParseUint(args[1], 10, 64)
	}
	if slots == 0 {
		die("SLOTS must be positive")
	}
	benchInit()
	table := make([][]byte, slots)
	for i := uint64(0); i < n; i++ {
		r := sNextRand()
		k, l := r%slots, 1+(r>>32)%15
		s := make([]byte, l)
		b := byte(r >> 48)
		for j := range s {
			s[j] = b
		}
		table[k] = s
		tick()
	}
	var checksum uint64
	for _, s := range table {
		for _, b := range s {
			checksum += uint64(b)
		}
	}
	benchFinish("strings", checksum)
}
