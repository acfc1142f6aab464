// fastify model: a fastify (npm) app on Node.js's one event loop; each request does INCR then
// GET through node-redis (npm `redis`) on one connection, which writes the commands issued in
// one tick together. Segments: each stretch of the handler between its awaits (fastify's
// routing before the handler and node-redis's parsing and writing are not logged).
'use strict';
const fastify = require('fastify')({ logger: false });
const { createClient } = require('redis');
const fs = require('fs');

const arg = (name) => process.argv[process.argv.indexOf(name) + 1];
const spinN = Number(process.argv.includes('--spin') ? arg('--spin') : 2000);
const now = () => process.hrtime.bigint(); // CLOCK_MONOTONIC, as the trace's clock
const segments = [];
const segment = (rid, t0) => segments.push([rid, t0, now()]);
process.on('SIGTERM', () => {
  fs.writeFileSync(arg('--truth'), segments.map(([rid, t0, t1]) => JSON.stringify({
    request_id: rid, tier: 'app', pid: process.pid, tid: process.pid, t0: Number(t0), t1: Number(t1),
  }) + '\n').join(''));
  process.exit(0);
});

const client = createClient({ socket: { host: '127.0.0.1', port: Number(arg('--redis')) } });
fastify.get('/*', async (req, reply) => {
  const rid = String(req.headers['x-request-id'] || '');
  let t0 = now();
  const incr = client.incr('hits');
  segment(rid, t0);
  const n = await incr;
  t0 = now();
  const get = client.get('hits');
  segment(rid, t0);
  await get;
  t0 = now();
  let x = 0;
  for (let i = 0; i < spinN; i++) x += i * i;
  reply.header('X-Request-ID', rid).type('text/plain').send(`ok ${rid} ${n} ${x}\n`);
  segment(rid, t0);
  return reply;
});
client.connect().then(() => fastify.listen({ port: Number(arg('--port')), host: '127.0.0.1' }));
