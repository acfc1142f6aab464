// gRPC model, Node.js server: `@grpc/grpc-js` (npm) serves one generic unary method on one
// event loop, HTTP/2 streams of many callers multiplexed on one connection; each call does
// INCR then GET on one shared redis connection with pipelined commands. Segments (tier
// `worker`): the handler from its entry to the INCR's write, the INCR callback to the GET's
// write, the GET callback to handing the answer to grpc-js. Kept in memory and written on
// SIGTERM, after the recording.
'use strict';
const grpc = require('@grpc/grpc-js');
const net = require('net');
const fs = require('fs');

const arg = (name) => process.argv[process.argv.indexOf(name) + 1];
const port = Number(arg('--port'));
const redisPort = Number(arg('--redis'));
const truthPath = arg('--truth');
const spin = Number(process.argv.includes('--spin') ? arg('--spin') : 2000);

// process.hrtime is libuv's uv_hrtime: CLOCK_MONOTONIC, as the trace's clock.
const now = () => process.hrtime.bigint();
const segments = [];
const segment = (rid, t0, t1) => segments.push([rid, t0, t1]);
process.on('SIGTERM', () => {
  const out = segments.map(([rid, t0, t1]) => JSON.stringify({
    request_id: rid, tier: 'worker', pid: process.pid, tid: process.pid,
    t0: Number(t0), t1: Number(t1),
  })).join('\n');
  fs.writeFileSync(truthPath, out ? out + '\n' : '');
  process.exit(0);
});

// A minimal RESP client: every command is written at once; replies come back in order.
const redis = net.connect(redisPort, '127.0.0.1');
redis.setNoDelay(true);
const waiting = [];
let buf = Buffer.alloc(0);
redis.on('data', (chunk) => {
  buf = Buffer.concat([buf, chunk]);
  for (;;) {
    const eol = buf.indexOf('\r\n');
    if (eol < 0) return;
    const line = buf.subarray(0, eol).toString();
    let value; let used;
    if (line[0] === '$' && line !== '$-1') {
      const n = Number(line.slice(1));
      if (buf.length < eol + 2 + n + 2) return;
      value = buf.subarray(eol + 2, eol + 2 + n).toString();
      used = eol + 2 + n + 2;
    } else {
      value = line.slice(1);
      used = eol + 2;
    }
    buf = buf.subarray(used);
    waiting.shift()(value);
  }
});
function call(parts, cb) {
  waiting.push(cb);
  redis.write(`*${parts.length}\r\n` + parts.map((p) => `$${Buffer.byteLength(String(p))}\r\n${p}\r\n`).join(''));
}

function work() {
  let x = 0;
  for (let i = 0; i < spin; i++) x += i * i;
  return x;
}

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
    const t0 = now();
    call(['INCR', 'hits'], (n) => {
      const t1 = now();
      call(['GET', 'hits'], () => {
        const t2 = now();
        const out = Buffer.from(`${n} ${work()}`);
        segment(rid, t2, now());
        done(null, out);
      });
      segment(rid, t1, now());
    });
    segment(rid, t0, now());
  },
});
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
});
