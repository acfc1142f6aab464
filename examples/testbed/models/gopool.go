// Go model: `net/http` (a goroutine per connection, goroutines moved between OS threads by the
// runtime, the netpoller waiting in epoll_pwait), each request taking one of 4 redis
// connections from a buffered channel, doing INCR then GET, and answering. Segments: every
// stretch a goroutine runs for a request between two blocking points (from the handler's
// entry to the INCR's write, from each reply to the next write, the last to the response),
// on the OS thread it ran on (gettid at both ends; a stretch that moved threads is logged on
// neither). Kept in memory, written on SIGTERM after the recording.
//
//	go build examples/testbed/models/gopool.go examples/testbed/models/goshared.go
package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
)

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
	port, redisPort, truth, spin := modelFlags()

	pool := make(chan *redis, 4)
	for i := 0; i < 4; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", redisPort))
		if err != nil {
			panic(err)
		}
		pool <- &redis{c, bufio.NewReader(c)}
	}

	writeTruthOnTerm(truth)

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
		answer(w, rid, n, spin, s)
	})
	if err := http.ListenAndServe(fmt.Sprintf("127.0.0.1:%d", port), nil); err != nil {
		panic(err)
	}
}
