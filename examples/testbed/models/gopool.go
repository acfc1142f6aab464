// Go model: `net/http` (a goroutine per connection, goroutines moved between OS threads by the
// runtime, the netpoller waiting in epoll_pwait), each request taking one of 4 redis
// connections from a buffered channel, doing INCR then GET, and answering. Segments: every
// stretch a goroutine runs for a request between two blocking points (from the handler's
// entry to the INCR's write, from each reply to the next write, the last to the response),
// on the OS thread it ran on (gettid at both ends; a stretch that moved threads is logged on
// neither). Kept in memory, written on SIGTERM after the recording.
//
//	go run examples/testbed/models/gopool.go --port P --redis R --truth FILE
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
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

type redis struct {
	c net.Conn
	r *bufio.Reader
}

func (r *redis) send(parts ...string) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(parts))
	for _, p := range parts {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(p), p)
	}
	r.c.Write([]byte(b.String()))
}

func (r *redis) reply() string {
	line, _ := r.r.ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "$") && line != "$-1" {
		n, _ := strconv.Atoi(line[1:])
		buf := make([]byte, n+2)
		for got := 0; got < len(buf); {
			k, err := r.r.Read(buf[got:])
			if err != nil {
				return ""
			}
			got += k
		}
		return string(buf[:n])
	}
	if len(line) > 0 {
		return line[1:]
	}
	return line
}

func main() {
	port := flag.Int("port", 19080, "")
	redisPort := flag.Int("redis", 19081, "")
	truth := flag.String("truth", "segments.jsonl", "")
	spin := flag.Int("spin", 2000, "")
	flag.Parse()

	pool := make(chan *redis, 4)
	for i := 0; i < 4; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", *redisPort))
		if err != nil {
			panic(err)
		}
		pool <- &redis{c, bufio.NewReader(c)}
	}

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
		var r *redis
		select {
		case r = <-pool:
		default:
			// The pool is empty: the goroutine parks and its thread runs others meanwhile.
			s.end()
			r = <-pool
			s = begin(rid)
		}
		r.send("INCR", "hits")
		s.end()
		n := r.reply()
		s = begin(rid)
		r.send("GET", "hits")
		s.end()
		r.reply()
		s = begin(rid)
		pool <- r
		x := 0
		for i := 0; i < *spin; i++ {
			x += i * i
		}
		body := fmt.Sprintf("ok %s %s %d\n", rid, n, x)
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
