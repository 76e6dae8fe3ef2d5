// One worker of the load generator's fleet (bench/fleet.py): many WebSocket clients in one Node
// process, with the `ws` package, reading faster than Python's asyncio can.
//
//   node clients.js --dialect tally --port 8765 --clients 5000 --first 0 --concurrency 500
//
// It connects its clients (a Tally client says hello with a name and secret of its own), then
// prints {"ready": n} once every one has its welcome (a counter's first value). On stdin it takes
// one JSON line per command: {"collect": N, "timeout": s} waits until every client has N updates
// since its welcome, all in order, and prints, for each k in 1..N, the latest arrival of the k-th
// update over its clients (seconds on the monotonic clock, the one Python's time.monotonic reads),
// or null if one never came; {"quit": true} closes everything and exits.
"use strict";
const { WebSocket } = require("ws");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].slice(2)] = process.argv[i + 1];
const tally = args.dialect === "tally";
const port = Number(args.port);
const count = Number(args.clients);
const first = Number(args.first || 0);
const concurrency = Number(args.concurrency || 500);

const WELCOME_SEQ = /"total":-?\d+,"seq":(\d+)/;
const UPDATE_SEQ = /"type":"update","seq":(\d+)/g;
const VALUE = /"value":\s*(\d+)/g;

const now = () => Number(process.hrtime.bigint()) / 1e9;
const clients = [];

function track(client, text, at) {
  if (tally && client.base === null) {
    if (!text.startsWith('{"type":"welcome"')) return;
    client.base = client.last = Number(WELCOME_SEQ.exec(text)[1]);
    return;
  }
  const pattern = tally ? UPDATE_SEQ : VALUE;
  pattern.lastIndex = 0;
  let match;
  while ((match = pattern.exec(text)) !== null) {
    const seq = Number(match[1]);
    if (client.base === null) {
      client.base = client.last = seq; // a counter's first value is the state at connect
      continue;
    }
    if (seq !== client.last + 1) client.inOrder = false;
    client.last = seq;
    const k = seq - client.base;
    if (k >= 1 && k <= client.arrivals.length) client.arrivals[k - 1] = at;
    else if (k > client.arrivals.length) client.arrivals.push(at); // next in order
  }
}

function open(index) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, tally ? ["tally.v2"] : [], { perMessageDeflate: false });
    const client = { ws, base: null, last: null, inOrder: true, arrivals: [] };
    ws.on("open", () => {
      if (tally) {
        ws.send(JSON.stringify({ type: "hello", name: `bench-${index}`, secret: `bench-secret-${process.pid}-${index}` }));
      }
      clients.push(client);
      resolve(client);
    });
    ws.on("message", (data) => track(client, data.toString(), now()));
    ws.on("error", reject);
  });
}

async function connectAll() {
  let next = 0;
  async function lane() {
    while (next < count) {
      const index = first + next++;
      for (let attempt = 0; ; attempt++) {
        try {
          await open(index);
          break;
        } catch (error) {
          if (attempt >= 20) throw error;
          await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
}

function waitFor(condition, timeout) {
  const deadline = Date.now() + timeout * 1000;
  return new Promise((resolve) => {
    const poll = () => {
      if (condition()) resolve(true);
      else if (Date.now() > deadline) resolve(false);
      else setTimeout(poll, 5);
    };
    poll();
  });
}

function say(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

async function collect(n, timeout) {
  const done = await waitFor(() => clients.every((c) => c.base !== null && c.last - c.base >= n), timeout);
  const arrivals = [];
  for (let k = 0; k < n; k++) {
    let latest = 0;
    for (const c of clients) {
      const at = c.arrivals[k];
      if (at === undefined) {
        latest = null;
        break;
      }
      if (at > latest) latest = at;
    }
    arrivals.push(latest);
  }
  say({ valid: done && clients.every((c) => c.inOrder), arrivals });
}

async function main() {
  await connectAll();
  const synced = await waitFor(() => clients.every((c) => c.base !== null), 120);
  say({ ready: synced ? clients.length : 0 });
  let pending = "";
  process.stdin.on("data", async (chunk) => {
    pending += chunk.toString();
    let end;
    while ((end = pending.indexOf("\n")) >= 0) {
      const command = JSON.parse(pending.slice(0, end));
      pending = pending.slice(end + 1);
      if (command.collect !== undefined) await collect(command.collect, command.timeout);
      if (command.quit) {
        for (const c of clients) c.ws.terminate();
        process.exit(0);
      }
    }
  });
  process.stdin.on("end", () => process.exit(0));
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
