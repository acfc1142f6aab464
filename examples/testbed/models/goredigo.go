// Go model with a common client: `net/http` (a goroutine per connection) calling redis through
// redigo's `redis.Pool` (Debian's golang-github-gomodule-redigo-dev; at most 4 connections,
// a goroutine waits for one when all are taken), INCR then GET with Send, Flush and Receive,
// and answering. Segments as in gopool.go: every stretch a goroutine runs for a request
// between two blocking points (from the handler's entry to taking a connection, from there to
// the INCR's write, from each reply to the next write, the last to the response), on the OS
// thread it ran on (gettid at both ends; a stretch that moved threads is logged on neither).
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build examples/testbed/models/goredigo.go examples/testbed/models/goshared.go
package main

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/gomodule/redigo/redis"
)

func main() {
	port, redisPort, truth, spin := modelFlags()
	pool := &redis.Pool{MaxIdle: 4, MaxActive: 4, Wait: true,
		Dial: func() (redis.Conn, error) { return redis.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", redisPort)) }}
	writeTruthOnTerm(truth)
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
		answer(w, rid, strconv.Itoa(n), spin, s)
	})
	if err := http.ListenAndServe(fmt.Sprintf("127.0.0.1:%d", port), nil); err != nil {
		panic(err)
	}
}
