// Go model with a common client: `net/http` (a goroutine per connection) calling redis through
// redigo's `redis.Pool` (Debian's golang-github-gomodule-redigo-dev; at most 4 connections,
// a goroutine waits for one when all are taken), INCR then GET with Send, Flush and Receive,
// and answering. Segments as in gopool.go: every stretch a goroutine runs for a request
// between two blocking points (from the handler's entry to taking a connection, from there to
// the INCR's write, from each reply to the next write, the last to the response), on the OS
// thread it ran on (gettid at both ends; a stretch that moved threads is logged on neither).
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build examples/testbed/models/goredigo.go
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

	"github.com/gomodule/redigo/redis"
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


func main() {
	port := flag.Int("port", 19080, "")
	redisPort := flag.Int("redis", 19081, "")
	truth := flag.String("truth", "segments.jsonl", "")
	spin := flag.Int("spin", 2000, "")
	flag.Parse()
	pool := &redis.Pool{MaxIdle: 4, MaxActive: 4, Wait: true,
		Dial: func() (redis.Conn, error) { return redis.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", *redisPort)) }}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		f, _ := os.Create(*truth)
		mu.Lock()
		for _, s := range segments {
			fmt.Fprintf(f, "{\"request_id\": %q, \"tier\": \"app\", \"pid\": %d, \"tid\": %d, \"t0\": %d, \"t1\": %d}\n",
				s.rid, pid, s.tid, s.t0, s.t1)
		}
		f.Close()
		os.Exit(0)
	}()
	http.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		rid := req.Header.Get("X-Request-ID")
		s := begin(rid)
		s.end()
		c := pool.Get()
		s = begin(rid)
		c.Send("INCR", "hits")
		c.Flush()
		s.end()
		n, _ := redis.Int(c.Receive())
		s = begin(rid)
		c.Send("GET", "hits")
		c.Flush()
		s.end()
		c.Receive()
		s = begin(rid)
		c.Close()
		x := 0
		for i := 0; i < *spin; i++ {
			x += i * i
		}
		body := fmt.Sprintf("ok %s %d %d\n", rid, n, x)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Request-ID", rid)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		s.end()
		w.Write([]byte(body))
	})
	if err := http.ListenAndServe(fmt.Sprintf("127.0.0.1:%d", *port), nil); err != nil {
		panic(err)
	}
}
