// What the testbed's own Node.js models share: one redis connection with pipelined commands,
// and a request's handler: INCR then GET, each issued from the previous reply's callback
// (their arguments and truth come from node_truth.js).
'use strict';
const net = require('net');
const { args, now, segment, writeTruthOnExit, work } = require('./node_truth');

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
