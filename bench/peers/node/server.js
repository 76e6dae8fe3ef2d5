// The same counter protocol on Node.js with the `ws` package: broadcast the
// value on every change and the user count on every join and leave.
const { WebSocketServer, WebSocket } = require("ws");

const port = Number(process.argv[2] || 0);
const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });
let value = 0;
// Set: the user count goes out at most this often (a large room), not on every join and leave.
const countInterval = Number(process.env.BENCH_COUNT_INTERVAL || 0) * 1000;
let countPending = false;

function usersChanged() {
  if (!countInterval) return everyone(JSON.stringify({ type: "users", count: wss.clients.size }));
  if (countPending) return;
  countPending = true;
  setTimeout(() => {
    countPending = false;
    everyone(JSON.stringify({ type: "users", count: wss.clients.size }));
  }, countInterval);
}

function everyone(text) {
  for (const client of wss.clients) {
    if (client.readyState === WebSocket.OPEN) client.send(text);
  }
}

wss.on("connection", (ws) => {
  usersChanged();
  ws.send(JSON.stringify({ type: "value", value }));
  ws.on("message", (data) => {
    const event = JSON.parse(data);
    if (event.action === "plus") value += 1;
    else if (event.action === "minus") value -= 1;
    else return;
    everyone(JSON.stringify({ type: "value", value }));
  });
  ws.on("close", usersChanged);
});

wss.on("listening", () => console.log(`serving on ws://127.0.0.1:${wss.address().port}`));
