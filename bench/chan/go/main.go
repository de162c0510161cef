// The Go twin of bench/chan/chanbench.c: the same workloads, the same
// output lines. Run with GOMAXPROCS=2 (run.sh does).
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

var scale = 1

func pingpong() {
	n := 1000000 * scale
	ping, pong := make(chan int), make(chan int)
	var wg sync.WaitGroup
	wg.Add(2)
	t0 := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			pong <- <-ping
		}
		wg.Done()
	}()
	go func() {
		for i := 0; i < n; i++ {
			ping <- i
			<-pong
		}
		wg.Done()
	}()
	wg.Wait()
	fmt.Printf("pingpong %.1f ns/roundtrip\n", float64(time.Since(t0).Nanoseconds())/float64(n))
}

func buffered(capacity int) {
	n := 4000000 * scale
	c := make(chan int, capacity)
	var wg sync.WaitGroup
	wg.Add(2)
	t0 := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			c <- i
		}
		wg.Done()
	}()
	go func() {
		for i := 0; i < n; i++ {
			<-c
		}
		wg.Done()
	}()
	wg.Wait()
	fmt.Printf("buffered_cap%d %.2f Mitems/s\n", capacity, float64(n)/time.Since(t0).Seconds()/1e6)
}

func select4() {
	n := 500000 * scale
	var cs [4]chan int
	for k := range cs {
		cs[k] = make(chan int, 128)
	}
	var wg sync.WaitGroup
	wg.Add(5)
	t0 := time.Now()
	for k := range cs {
		go func(c chan int) {
			for i := 0; i < n; i++ {
				c <- i
			}
			wg.Done()
		}(cs[k])
	}
	go func() {
		for i := 0; i < 4*n; i++ {
			select {
			case <-cs[0]:
			case <-cs[1]:
			case <-cs[2]:
			case <-cs[3]:
			}
		}
		wg.Done()
	}()
	wg.Wait()
	fmt.Printf("select4 %.1f ns/select\n", float64(time.Since(t0).Nanoseconds())/float64(4*n))
}

func mutexContention(g int) {
	n := 4000000 * scale / g
	var mu sync.Mutex
	counter := 0
	var wg sync.WaitGroup
	wg.Add(g)
	t0 := time.Now()
	for i := 0; i < g; i++ {
		go func() {
			for j := 0; j < n; j++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	if counter != n*g {
		fmt.Println("mutex: WRONG COUNT")
	}
	fmt.Printf("mutex_%d %.1f ns/op\n", g, float64(time.Since(t0).Nanoseconds())/float64(n*g))
}

func workerPool() {
	n := 2000000 * scale
	jobs, results := make(chan int, 128), make(chan int, 128)
	var workers, all sync.WaitGroup
	workers.Add(8)
	all.Add(3)
	t0 := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			jobs <- i
		}
		close(jobs)
		all.Done()
	}()
	for i := 0; i < 8; i++ {
		go func() {
			for v := range jobs {
				results <- v*2 + 1
			}
			workers.Done()
		}()
	}
	go func() {
		workers.Wait()
		close(results)
		all.Done()
	}()
	go func() {
		sum := 0
		for v := range results {
			sum += v
		}
		if sum != n*n {
			fmt.Println("pool: WRONG SUM")
		}
		all.Done()
	}()
	all.Wait()
	fmt.Printf("workerpool %.2f Mitems/s\n", float64(n)/time.Since(t0).Seconds()/1e6)
}

// Go's original skynet: a million leaves, 10 children per node, every sum
// sent on the parent's unbuffered channel.
func skynetNode(c chan int, num, size int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int)
	sz := size / 10
	for i := 0; i < 10; i++ {
		go skynetNode(rc, num+i*sz, sz)
	}
	sum := 0
	for i := 0; i < 10; i++ {
		sum += <-rc
	}
	c <- sum
}

func skynetChan() {
	const leaves = 1000000
	c := make(chan int)
	t0 := time.Now()
	go skynetNode(c, 0, leaves)
	sum := <-c
	t := time.Since(t0)
	if sum != leaves*(leaves-1)/2 {
		fmt.Println("skynet_chan: WRONG SUM")
	}
	fmt.Printf("skynet_chan %.1f ns/goroutine\n", float64(t.Nanoseconds())/1111111.0)
}

func main() {
	if len(os.Args) > 1 {
		if s, err := strconv.Atoi(os.Args[1]); err == nil && s > 0 {
			scale = s
		}
	}
	// Names after the scale run only those workloads (as chanbench).
	want := func(name string) bool {
		if len(os.Args) <= 2 {
			return true
		}
		for _, a := range os.Args[2:] {
			if a == name {
				return true
			}
		}
		return false
	}
	if want("pingpong") {
		pingpong()
	}
	if want("buffered_cap1") {
		buffered(1)
	}
	if want("buffered_cap1024") {
		buffered(1024)
	}
	if want("select4") {
		select4()
	}
	if want("mutex_2") {
		mutexContention(2)
	}
	if want("mutex_8") {
		mutexContention(8)
	}
	if want("workerpool") {
		workerPool()
	}
	if want("skynet_chan") {
		skynetChan()
	}
}
