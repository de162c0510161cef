// Short strings: see bench/gc/strings.c, which this follows step by step
// (same random numbers in the same order).
package main

var sRng uint64 = 7

func shortStrings(args []string) {
	slots, n := uintArgs(args, 65536, 20000000, "SLOTS")
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
