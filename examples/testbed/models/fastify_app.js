// fastify model: a fastify (npm) app on Node.js's one event loop; each request does INCR then
// GET through node-redis (npm `redis`) on one connection, which writes the commands issued in
// one tick together. Segments: each stretch of the handler between its awaits (fastify's
// routing before the handler and node-redis's parsing and writing are not logged).
'use strict';
const fastify = require('fastify')({ logger: false });
const { createClient } = require('redis');
const { args, now, segment, writeTruthOnExit, work } = require('./node_truth');

writeTruthOnExit('app');
const client = createClient({ socket: { host: '127.0.0.1', port: args.redisPort } });
fastify.get('/*', async (req, reply) => {
  const rid = String(req.headers['x-request-id'] || '');
  let t0 = now();
  const incr = client.incr('hits');
  segment(rid, t0, now());
  const n = await incr;
  t0 = now();
  const get = client.get('hits');
  segment(rid, t0, now());
  await get;
  t0 = now();
  const x = work();
  reply.header('X-Request-ID', rid).type('text/plain').send(`ok ${rid} ${n} ${x}\n`);
  segment(rid, t0, now());
  return reply;
});
client.connect().then(() => fastify.listen({ port: args.port, host: '127.0.0.1' }));
