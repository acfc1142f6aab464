// Express model: an express (npm) app on Node.js's one event loop; each request does INCR then
// GET through ioredis (npm) on one shared connection (commands written as issued, several in
// flight, replies matched in order). Segments: each stretch of the handler between its awaits
// (express's routing before the handler and ioredis's parsing are not logged).
'use strict';
const express = require('express');
const Redis = require('ioredis');
const fs = require('fs');

const arg = (name) => process.argv[process.argv.indexOf(name) + 1];
const port = Number(arg('--port'));
const spinN = Number(process.argv.includes('--spin') ? arg('--spin') : 2000);
const truthPath = arg('--truth');

const now = () => process.hrtime.bigint(); // CLOCK_MONOTONIC, as the trace's clock
const segments = [];
const segment = (rid, t0) => segments.push([rid, t0, now()]);
process.on('SIGTERM', () => {
  fs.writeFileSync(truthPath, segments.map(([rid, t0, t1]) => JSON.stringify({
    request_id: rid, tier: 'app', pid: process.pid, tid: process.pid, t0: Number(t0), t1: Number(t1),
  }) + '\n').join(''));
  process.exit(0);
});

const redis = new Redis({ host: '127.0.0.1', port: Number(arg('--redis')), enableAutoPipelining: false });
const app = express();
app.get(/.*/, async (req, res) => {
  const rid = String(req.headers['x-request-id'] || '');
  let t0 = now();
  const incr = redis.incr('hits');
  segment(rid, t0);
  const n = await incr;
  t0 = now();
  const get = redis.get('hits');
  segment(rid, t0);
  await get;
  t0 = now();
  let x = 0;
  for (let i = 0; i < spinN; i++) x += i * i;
  res.set('X-Request-ID', rid).type('text/plain').send(`ok ${rid} ${n} ${x}\n`);
  segment(rid, t0);
});
app.listen(port, '127.0.0.1');
