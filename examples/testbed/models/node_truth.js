// What every Node.js model shares: its arguments and its segment truth (kept in memory,
// written on SIGTERM, after the recording).
'use strict';
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

// The CPU work a model does for each request.
function work() {
  let x = 0;
  for (let i = 0; i < args.spin; i++) x += i * i;
  return x;
}

module.exports = { args, now, segment, writeTruthOnExit, work };
