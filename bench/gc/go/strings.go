// Short strings: see bench/gc/strings.c, which this follows step by step
// (same random numbers in the same order).
package main

import "strconv"

var sRng uint64 = 7

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
		r := splitmix(&sRng)
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
