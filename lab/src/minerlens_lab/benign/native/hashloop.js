// A Node.js hashing job for the minerlens lab: WORKERS worker_threads compute double SHA-256 over an
// 80-byte header with a moving nonce (a checksum/dedup/proof service's inner loop); every 2 s the main
// thread appends "<seconds> <total-hashes>" to LOG.  Usage: node hashloop.js WORKERS LOG [ALGO]
'use strict';
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const fs = require('node:fs');

if (isMainThread) {
  const [workers, log, algo = 'sha256'] = process.argv.slice(2);
  const n = Number.parseInt(workers, 10);
  if (!(n > 0) || !log) {
    process.stderr.write('usage: node hashloop.js WORKERS LOG [ALGO]\n');
    process.exit(2);
  }
  let total = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i += 1) {
    const w = new Worker(__filename, { workerData: { id: i, algo } });
    w.on('message', (count) => { total += count; });
    w.on('error', (err) => { process.stderr.write(`worker ${i}: ${err}\n`); process.exit(1); });
  }
  setInterval(() => {
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    fs.appendFileSync(log, `${s.toFixed(1)} ${total}\n`);
  }, 2000);
} else {
  const header = Buffer.alloc(80, workerData.id);
  let nonce = 0;
  const batch = () => {
    for (let k = 0; k < 20000; k += 1, nonce += 1) {
      header.writeUInt32LE(nonce >>> 0, 76);
      const first = crypto.createHash(workerData.algo).update(header).digest();
      crypto.createHash(workerData.algo).update(first).digest();
    }
    parentPort.postMessage(20000);
    setImmediate(batch);
  };
  batch();
}
