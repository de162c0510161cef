// GCBench: see bench/gc/gcbench.c, which this follows step by step.
package main

import (
	"fmt"
	"os"
	"strconv"
)

type gNode struct {
	left, right *gNode
	i, j        int32
}

const (
	gMinDepth  = 4
	gArraySize = 500000
)

var nodesMade uint64

func newGNode(l, r *gNode) *gNode {
	tick()
	nodesMade++
	return &gNode{left: l, right: r}
}

func treeSize(depth int) int64 { return (int64(1) << (depth + 1)) - 1 }

func populate(depth int, n *gNode) {
	if depth <= 0 {
		return
	}
	depth--
	n.left = newGNode(nil, nil)
	n.right = newGNode(nil, nil)
	populate(depth, n.left)
	populate(depth, n.right)
}

func makeTree(depth int) *gNode {
	if depth <= 0 {
		return newGNode(nil, nil)
	}
	l := makeTree(depth - 1)
	r := makeTree(depth - 1)
	return newGNode(l, r)
}

func countNodes(n *gNode) int64 {
	if n == nil {
		return 0
	}
	tick()
	return 1 + countNodes(n.left) + countNodes(n.right)
}

var sink *gNode

func gcbench(args []string) {
	maxDepth := 16
	if len(args) > 0 {
		maxDepth, _ = strconv.Atoi(args[0])
	}
	if maxDepth < gMinDepth || maxDepth > 24 {
		die("depth must be 4..24")
	}
	longLivedDepth, stretchDepth := maxDepth, maxDepth+2
	benchInit()

	fmt.Fprintf(os.Stderr, "stretch tree of depth %d\n", stretchDepth)
	sink = makeTree(stretchDepth)
	sink = nil

	longLived := newGNode(nil, nil)
	populate(longLivedDepth, longLived)
	tick()
	array := make([]float64, gArraySize)
	for i := range array {
		tick()
		if i > 0 {
			array[i] = 1.0 / float64(i)
		}
	}

	for d := gMinDepth; d <= maxDepth; d += 2 {
		iters := 2 * treeSize(stretchDepth) / treeSize(d)
		t0 := nowNs()
		for k := int64(0); k < iters; k++ {
			t := newGNode(nil, nil)
			populate(d, t)
		}
		t1 := nowNs()
		for k := int64(0); k < iters; k++ {
			sink = makeTree(d)
		}
		sink = nil
		t2 := nowNs()
		fmt.Fprintf(os.Stderr, "%d trees of depth %d: top-down %.1f ms, bottom-up %.1f ms\n", iters, d,
			float64(t1-t0)/1e6, float64(t2-t1)/1e6)
	}

	ll := countNodes(longLived)
	if ll != treeSize(longLivedDepth) || array[1000] != 1.0/1000 {
		die("the long-lived tree or the array did not survive")
	}
	benchFinish("gcbench", nodesMade+uint64(ll))
}
