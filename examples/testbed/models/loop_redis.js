// What the Node.js models share: their arguments, the segment truth (kept in memory, written
// on SIGTERM, after the recording), one redis connection with pipelined commands, and a
// request's handler: INCR then GET, each issued from the previous reply's callback.
'use strict';
const net = require('net');
const fs = require('fs');

const arg = (name) => process.argv[process.argv.indexOf(name) + 1];
const args = {
  port: Number(arg('--port')),
  redisPort: Number(arg('--redis')),
  truthPath: arg('--truth'),
  spin: Number(process.argv.includes('--spin') ? arg('--spin') : 2000),
};

// process.hrtime is libuv's uv_hrtime: CLOCK_MONOTONIC, as the trace's clock.
const now = () => process.hrtime.bigint();
const segments = [];
const segment = (rid, t0, t1) => segments.push([rid, t0, t1]);

// Writes the segments, as tier `tier`, when the model is stopped.
function writeTruthOnExit(tier) {
  process.on('SIGTERM', () => {
    const out = segments.map(([rid, t0, t1]) => JSON.stringify({
      request_id: rid, tier, pid: process.pid, tid: process.pid,
      t0: Number(t0), t1: Number(t1),
    })).join('\n');
    fs.writeFileSync(args.truthPath, out ? out + '\n' : '');
    process.exit(0);
  });
}

// A minimal RESP client: every command is written at once; replies come back in order.
const redis = net.connect(args.redisPort, '127.0.0.1');
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
  for (let i = 0; i < args.spin; i++) x += i * i;
  return x;
}

// Request `rid`'s work: INCR, then GET from INCR's callback, then `prepare(n, x)` (INCR's
// reply and the spin's result) from GET's, which returns what sends the answer. Segments: the
// handler from its entry to the INCR's write, the INCR callback to the GET's write, the GET
// callback to the answer's send.
function handle(rid, prepare) {
  const t0 = now();
  call(['INCR', 'hits'], (n) => {
    const t1 = now();
    call(['GET', 'hits'], () => {
      const t2 = now();
      const send = prepare(n, work());
      segment(rid, t2, now());
      send();
    });
    segment(rid, t1, now());
  });
  segment(rid, t0, now());
}

module.exports = { args, writeTruthOnExit, handle };
