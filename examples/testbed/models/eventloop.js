// Event-loop model (Node.js): one thread serves every connection with `http`; each request
// does INCR then GET on one shared redis connection, with commands pipelined (written as soon
// as a handler issues them, replies matched in order). Segments: see `loop_redis.js`.
'use strict';
const http = require('http');
const { args, writeTruthOnExit, handle } = require('./loop_redis');

writeTruthOnExit('app');
http.createServer((req, res) => {
  const rid = String(req.headers['x-request-id'] || '');
  handle(rid, (n, x) => {
    const body = `ok ${rid} ${n} ${x}\n`;
    res.setHeader('Content-Type', 'text/plain');
    res.setHeader('X-Request-ID', rid);
    return () => res.end(body);
  });
}).listen(args.port, '127.0.0.1');
