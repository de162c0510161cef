// binary-trees: see bench/gc/bintree.c, which this follows step by step.
package main

import (
	"fmt"
	"os"
	"strconv"
)

type bNode struct {
	left, right *bNode
}

const bMinDepth = 4

func bottomUp(depth int) *bNode {
	var l, r *bNode
	if depth > 0 {
		l = bottomUp(depth - 1)
		r = bottomUp(depth - 1)
	}
	tick()
	return &bNode{l, r}
}

func (n *bNode) check() int64 {
	tick()
	if n.left == nil {
		return 1
	}
	return 1 + n.left.check() + n.right.check()
}

func bintree(args []string) {
	n := 18
	if len(args) > 0 {
		n, _ = strconv.Atoi(args[0])
	}
	if n < 0 || n > 26 {
		die("depth must be 0..26")
	}
	maxDepth := n
	if maxDepth < bMinDepth+2 {
		maxDepth = bMinDepth + 2
	}
	var checksum uint64
	benchInit()

	c := bottomUp(maxDepth + 1).check()
	fmt.Fprintf(os.Stderr, "stretch tree of depth %d\t check: %d\n", maxDepth+1, c)
	checksum += uint64(c)

	longLived := bottomUp(maxDepth)

	for d := bMinDepth; d <= maxDepth; d += 2 {
		iters := int64(1) << (maxDepth - d + bMinDepth)
		var sum int64
		for i := int64(0); i < iters; i++ {
			sum += bottomUp(d).check()
		}
		fmt.Fprintf(os.Stderr, "%d\t trees of depth %d\t check: %d\n", iters, d, sum)
		checksum += uint64(sum)
	}

	c = longLived.check()
	fmt.Fprintf(os.Stderr, "long lived tree of depth %d\t check: %d\n", maxDepth, c)
	checksum += uint64(c)
	benchFinish("bintree", checksum)
}
