// What the Go models share (built with each: `go build gopool.go goshared.go`): the segment
// truth, stretches a goroutine ran for a request on one OS thread, kept in memory and written
// on SIGTERM after the recording; and the answer.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"unsafe"
)

type segment struct {
	rid    string
	tid    int
	t0, t1 int64
}

var (
	mu       sync.Mutex
	segments []segment
	pid      = os.Getpid()
)

// now is CLOCK_MONOTONIC in ns, as the trace's clock (time.Now's monotonic reading has
// another origin).
func now() int64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

// step is one stretch of a goroutine's work on a request.
type step struct {
	rid string
	tid int
	t0  int64
}

func begin(rid string) step { return step{rid, syscall.Gettid(), now()} }

func (s step) end() {
	t1 := now()
	if syscall.Gettid() != s.tid {
		return // moved to another thread inside the stretch: where is not known
	}
	mu.Lock()
	segments = append(segments, segment{s.rid, s.tid, s.t0, t1})
	mu.Unlock()
}

// writeTruthOnTerm writes the segments to path and exits when the model gets SIGTERM.
func writeTruthOnTerm(path string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		f, _ := os.Create(path)
		mu.Lock()
		for _, s := range segments {
			fmt.Fprintf(f, "{\"request_id\": %q, \"tier\": \"app\", \"pid\": %d, \"tid\": %d, \"t0\": %d, \"t1\": %d}\n",
				s.rid, pid, s.tid, s.t0, s.t1)
		}
		f.Close()
		os.Exit(0)
	}()
}

// answer spins (the model's CPU work per request), ends the stretch s and writes the answer
// `ok ID N X` in one write.
func answer(w http.ResponseWriter, rid, n string, spin int, s step) {
	x := 0
	for i := 0; i < spin; i++ {
		x += i * i
	}
	body := fmt.Sprintf("ok %s %s %d\n", rid, n, x)
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("X-Request-ID", rid)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	s.end()
	w.Write([]byte(body))
}

// modelFlags parses the arguments every Go model takes: its port, redis's port, where to write
// the truth and the CPU work per request.
func modelFlags() (port, redisPort int, truth string, spin int) {
	flag.IntVar(&port, "port", 19080, "")
	flag.IntVar(&redisPort, "redis", 19081, "")
	flag.StringVar(&truth, "truth", "segments.jsonl", "")
	flag.IntVar(&spin, "spin", 2000, "")
	flag.Parse()
	return
}
