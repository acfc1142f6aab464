// Express model: an express (npm) app on Node.js's one event loop; each request does INCR then
// GET through ioredis (npm) on one shared connection (commands written as issued, several in
// flight, replies matched in order). Segments: each stretch of the handler between its awaits
// (express's routing before the handler and ioredis's parsing are not logged).
'use strict';
const express = require('express');
const Redis = require('ioredis');
const { args, now, segment, writeTruthOnExit, work } = require('./node_truth');

writeTruthOnExit('app');
const redis = new Redis({ host: '127.0.0.1', port: args.redisPort, enableAutoPipelining: false });
const app = express();
app.get(/.*/, async (req, res) => {
  const rid = String(req.headers['x-request-id'] || '');
  let t0 = now();
  const incr = redis.incr('hits');
  segment(rid, t0, now());
  const n = await incr;
  t0 = now();
  const get = redis.get('hits');
  segment(rid, t0, now());
  await get;
  t0 = now();
  const x = work();
  res.set('X-Request-ID', rid).type('text/plain').send(`ok ${rid} ${n} ${x}\n`);
  segment(rid, t0, now());
});
app.listen(args.port, '127.0.0.1');
