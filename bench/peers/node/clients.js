// One worker of the load generator's fleet (bench/fleet.py): many WebSocket clients in one Node
// process, reading faster than Python's asyncio can.
//
//   node clients.js --dialect tally --port 8765 --clients 5000 --first 0 --concurrency 500
//
// It connects its clients (a Tally client says hello with a name and secret of its own), then
// prints {"ready": n} once every one has its welcome (a counter's first value). On stdin it takes
// one JSON line per command: {"collect": N, "timeout": s} waits until every client has N updates
// since its welcome, all in order, and prints, for each k in 1..N, the latest arrival of the k-th
// update over its reading clients (seconds on the monotonic clock, the one Python's time.monotonic
// reads), or null if one never came; {"drain": N, "timeout": s} has every client read what is left
// and says whether each had N updates in order; {"quit": true} closes everything and exits. With
// --readers F below 1, only that share of the clients reads as updates come (see `readers`).
"use strict";
const net = require("net");
const crypto = require("crypto");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].slice(2)] = process.argv[i + 1];
const tally = args.dialect === "tally";
const port = Number(args.port);
const count = Number(args.clients);
const first = Number(args.first || 0);
const concurrency = Number(args.concurrency || 500);
// The share of clients that read as updates come (their arrival times are the latency); the others stop
// reading once welcomed, the kernel keeps what the server sent them, and each is drained and checked at collect.
const readers = Number(args.readers || 1);
const every = Math.max(1, Math.round(1 / readers));

const WELCOME = Buffer.from('{"type":"welcome"');
const TOTAL = Buffer.from('"total":');
const THEN_SEQ = Buffer.from(',"seq":');
const UPDATE_SEQ = Buffer.from('"type":"update","seq":');
const VALUE = Buffer.from('"value":');

const now = () => Number(process.hrtime.bigint()) / 1e9;
const clients = [];

function numberAt(payload, at) {
  let value = 0;
  while (payload[at] === 0x20) at++;
  for (let c = payload[at]; c >= 0x30 && c <= 0x39; c = payload[++at]) value = value * 10 + (c - 0x30);
  return value;
}

// A welcome's own seq: the only "seq" that follows a "total" (in updates, seq comes first).
function welcomeSeq(payload) {
  for (let found = payload.indexOf(TOTAL); found >= 0; found = payload.indexOf(TOTAL, found + 1)) {
    let at = found + TOTAL.length;
    if (payload[at] === 0x2d) at++;
    while (payload[at] >= 0x30 && payload[at] <= 0x39) at++;
    if (payload.compare(THEN_SEQ, 0, THEN_SEQ.length, at, at + THEN_SEQ.length) === 0) {
      return numberAt(payload, at + THEN_SEQ.length);
    }
  }
  throw new Error("a welcome without its seq");
}

function track(client, payload, at) {
  if (tally && client.base === null) {
    if (payload.indexOf(WELCOME) !== 0) return;
    client.base = client.last = welcomeSeq(payload);
    if (!client.reads) rest(client);
    return;
  }
  const needle = tally ? UPDATE_SEQ : VALUE;
  for (let found = payload.indexOf(needle); found >= 0; found = payload.indexOf(needle, found + needle.length)) {
    const seq = numberAt(payload, found + needle.length);
    if (client.base === null) {
      client.base = client.last = seq; // a counter's first value is the state at connect
      if (!client.reads) rest(client);
      continue;
    }
    if (seq !== client.last + 1) client.inOrder = false;
    client.last = seq;
    const k = seq - client.base;
    if (k >= 1 && k <= client.arrivals.length) client.arrivals[k - 1] = at;
    else if (k > client.arrivals.length) client.arrivals.push(at); // next in order
  }
}

// A lean client on a raw socket, like bench/wsclient.py: the handshake by hand, masked frames with an
// all-zero mask, pings answered, and each text payload searched as bytes (no decoding, no allocation per
// frame beyond the payload's view). The `ws` package costs about twice the CPU per message.
const ZERO_MASK = Buffer.alloc(4);

function clientFrame(opcode, payload) {
  const length = payload.length;
  let header;
  if (length < 126) header = Buffer.from([0x80 | opcode, 0x80 | length]);
  else if (length < 65536) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  return Buffer.concat([header, ZERO_MASK, payload]);
}

function open(index) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, noDelay: true });
    const client = { socket, base: null, last: null, inOrder: true, arrivals: [], reads: index % every === 0 };
    let buffer = null;
    let upgraded = false;
    socket.on("connect", () => {
      const key = crypto.randomBytes(16).toString("base64");
      const lines = [`GET / HTTP/1.1`, `Host: 127.0.0.1:${port}`, "Upgrade: websocket", "Connection: Upgrade",
        `Sec-WebSocket-Key: ${key}`, "Sec-WebSocket-Version: 13"];
      if (tally) lines.push("Sec-WebSocket-Protocol: tally.v2");
      socket.write(lines.join("\r\n") + "\r\n\r\n");
    });
    socket.on("data", (data) => {
      const at = now();
      buffer = buffer === null || buffer.length === 0 ? data : Buffer.concat([buffer, data]);
      if (!upgraded) {
        const end = buffer.indexOf("\r\n\r\n");
        if (end < 0) return;
        const status = buffer.toString("latin1", 0, buffer.indexOf("\r\n"));
        buffer = buffer.subarray(end + 4);
        if (!status.includes(" 101 ")) {
          socket.destroy();
          reject(new Error(status));
          return;
        }
        upgraded = true;
        if (tally) {
          const hello = { type: "hello", name: `bench-${index}`, secret: `bench-secret-${process.pid}-${index}` };
          socket.write(clientFrame(0x1, Buffer.from(JSON.stringify(hello))));
        }
        clients.push(client);
        resolve(client);
      }
      let used = 0;
      while (buffer.length - used >= 2) {
        const opcode = buffer[used] & 0x0f;
        let length = buffer[used + 1] & 0x7f;
        let offset = used + 2;
        if (length === 126) {
          if (buffer.length - used < 4) break;
          length = buffer.readUInt16BE(used + 2);
          offset = used + 4;
        } else if (length === 127) {
          if (buffer.length - used < 10) break;
          length = Number(buffer.readBigUInt64BE(used + 2));
          offset = used + 10;
        }
        if (buffer.length < offset + length) break;
        const payload = buffer.subarray(offset, offset + length);
        used = offset + length;
        if (opcode === 0x1) track(client, payload, at);
        else if (opcode === 0x9) socket.write(clientFrame(0xa, Buffer.from(payload)));
        else if (opcode === 0x8) socket.end(clientFrame(0x8, Buffer.from(payload.subarray(0, 2))));
      }
      buffer = used === buffer.length ? null : buffer.subarray(used);
    });
    socket.on("error", reject);
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

// Stop and start reading a socket for real: pause() alone keeps reading into the stream's buffer.
function rest(client) {
  client.socket.pause();
  if (client.socket._handle) client.socket._handle.readStop();
}

function wake(client) {
  if (client.socket._handle) client.socket._handle.readStart();
  client.socket.resume();
}

// The arrivals of the first n updates at the clients that read as they come.
async function collect(n, timeout) {
  const timed = clients.filter((c) => c.reads);
  const done = await waitFor(() => timed.every((c) => c.last - c.base >= n), timeout);
  const arrivals = [];
  for (let k = 0; k < n; k++) {
    let latest = 0;
    for (const c of timed) {
      const at = c.arrivals[k];
      if (at === undefined) {
        latest = null;
        break;
      }
      if (at > latest) latest = at;
    }
    arrivals.push(latest);
  }
  say({ valid: done && timed.every((c) => c.inOrder), arrivals, timed: timed.length });
}

// Every client reads what is left, and must have had n updates in order.
async function drain(n, timeout) {
  for (const c of clients) {
    if (c.reads) continue;
    c.draining = true;
    wake(c);
  }
  const done = await waitFor(() => clients.every((c) => c.base !== null && c.last - c.base >= n), timeout);
  say({ valid: done && clients.every((c) => c.inOrder) });
}

// Clients that do not read as updates come still read every 5 s (for a moment), so that they answer the
// server's pings like any live dashboard and are never dropped as silent.
function readNowAndThen() {
  setInterval(() => {
    const resting = clients.filter((c) => !c.reads && c.base !== null);
    for (const c of resting) wake(c);
    setTimeout(() => {
      for (const c of resting) if (!c.draining) rest(c);
    }, 50);
  }, 5000);
}

async function main() {
  if (every > 1) readNowAndThen();
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
      if (command.drain !== undefined) await drain(command.drain, command.timeout);
      if (command.quit) {
        for (const c of clients) c.socket.destroy();
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
