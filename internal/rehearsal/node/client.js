// node-redis client of the maintenance rehearsal (internal/rehearsal).
//
// Usage: node client.js HOST PORT CLIENTS
//
// Opens CLIENTS clients with maintenance notifications 'enabled' (RESP3)
// and runs a load on them that checks every reply (ECHO, SET, GET, INCR).
// It reads commands on stdin, one per line:
//   probe   open a probe client whose socket times out after 300 ms of
//           silence outside a maintenance (3 s during one), run BLPOP of an
//           empty list for 0.6 s on it, print the outcome, close it
//           (node-redis's command timeout bounds only the wait to be
//           written, so the socket timeout is what a maintenance relaxes;
//           and a socket timeout closes the client, hence one per probe)
//   stop    stop the load, print the summary, exit
// and prints one JSON object per line on stdout.
'use strict';
const readline = require('node:readline');
const { createClient } = require('redis');

const [host, portArg, nArg] = process.argv.slice(2);
const port = Number(portArg);
const n = Number(nArg);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const options = (extra) => ({
  socket: { host, port, reconnectStrategy: (retries) => (retries > 20 ? new Error('gave up') : 50) },
  RESP: 3,
  maintNotifications: 'enabled',
  maintRelaxedCommandTimeout: 3000,
  maintRelaxedSocketTimeout: 3000,
  ...extra,
});

let ok = 0;
let failed = 0;
const errors = [];
const fail = (what, err) => {
  failed++;
  if (errors.length < 20) errors.push(`${what}: ${err && err.message ? err.message : err}`);
};

async function worker(client, id, state) {
  let counter = 0;
  let i = 0;
  while (state.running) {
    const key = `node:${id}:${i % 16}`;
    const val = `v${id}-${i}`;
    // The two servers share no data (a real migration copies it), so a GET
    // may find nothing and the counter restarts at 1 once, on the new
    // server; every reply must still be the one its command asked for.
    try {
      const echo = await client.sendCommand(['ECHO', val]);
      if (echo !== val) throw new Error(`ECHO answered ${JSON.stringify(echo)}, want ${val}`);
      ok++;
      const set = await client.set(key, val);
      if (set !== 'OK') throw new Error(`SET answered ${JSON.stringify(set)}`);
      ok++;
      const got = await client.get(key);
      if (got !== val && got !== null) throw new Error(`GET ${key} answered ${JSON.stringify(got)}, want ${val}`);
      ok++;
      const inc = await client.incr(`node:${id}:counter`);
      if (inc !== counter + 1 && inc !== 1) throw new Error(`INCR answered ${inc}, want ${counter + 1} (or 1 on the new server)`);
      counter = inc;
      ok++;
    } catch (err) {
      fail(`client ${id}`, err);
    }
    i++;
  }
}

async function main() {
  const clients = [];
  let handshakes = 0;
  let refused = 0;
  const refusals = [];
  for (let id = 0; id < n; id++) {
    const c = createClient(options());
    c.on('error', (err) => { if (refusals.length < 5) refusals.push(String(err && err.message)); });
    try {
      await c.connect();
      handshakes++;
      clients.push(c);
    } catch (err) {
      refused++;
      if (refusals.length < 5) refusals.push(String(err && err.message));
      try { c.destroy(); } catch (_) { /* already closed */ }
    }
  }
  out({ event: 'ready', handshakes, refused, refusals });

  const state = { running: true };
  // Each client is one connection; node-redis pipelines the commands of
  // concurrent callers on it, so two workers per client.
  const workers = [];
  clients.forEach((c, id) => {
    workers.push(worker(c, `${id}a`, state));
    workers.push(worker(c, `${id}b`, state));
  });

  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const cmd = line.trim();
    if (cmd === 'probe') {
      const probe = createClient(options({ socket: { host, port, socketTimeout: 300 } }));
      probe.on('error', () => {});
      const start = Date.now();
      try {
        // A maintenance under way is announced with the handshake's reply.
        await probe.connect();
        await probe.sendCommand(['BLPOP', 'rehearsal:probe', '0.6']);
        out({ event: 'probe', ok: true, ms: Date.now() - start });
      } catch (err) {
        out({ event: 'probe', ok: false, ms: Date.now() - start, err: String(err && err.message) });
      }
      try { probe.destroy(); } catch (_) { /* closed by its timeout */ }
    } else if (cmd === 'stop') {
      break;
    }
  }
  state.running = false;
  await Promise.all(workers);
  out({ event: 'done', ok, failed, errors });
  await Promise.allSettled(clients.map((c) => c.close()));
  process.exit(0);
}

main().catch((err) => {
  out({ event: 'fatal', err: String(err && err.stack) });
  process.exit(1);
});
