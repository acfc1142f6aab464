// gRPC model, Node.js server: `@grpc/grpc-js` (npm) serves one generic unary method on one
// event loop, HTTP/2 streams of many callers multiplexed on one connection; each call does
// INCR then GET on one shared redis connection with pipelined commands. Segments (tier
// `worker`): see `loop_redis.js`; the last ends as the answer is handed to grpc-js.
'use strict';
const grpc = require('@grpc/grpc-js');
const { args, writeTruthOnExit, handle } = require('./loop_redis');

writeTruthOnExit('worker');
// Raw bytes in and out, as the Python tiers' generic handlers (no protobuf).
const raw = (x) => x;
const service = {
  Call: {
    path: '/kreq.Model/Call',
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};

const server = new grpc.Server();
server.addService(service, {
  Call: (rpc, done) => {
    const rid = rpc.request.toString();
    handle(rid, (n, x) => {
      const out = Buffer.from(`${n} ${x}`);
      return () => done(null, out);
    });
  },
});
server.bindAsync(`127.0.0.1:${args.port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
});
