// Benchmark peer: a Node.js `ws` broadcast server with the edge's protocol shape.
//
//   GET  /ws?token=T&topics=a:x,b:y
//                          JWT (HS256) verified before the upgrade, 401 otherwise; then a
//                          {"action": "connected", ...} message like the edge sends.
//   POST /publish          {"records": [<roomcast wire record>, ...]}: each record becomes a
//                          push shaped like the edge's, serialized once and the same Buffer
//                          sent to every client subscribed to its topic:type (a Map from
//                          topic:type to a Set of sockets), or to every client when it has
//                          no topic (the idiomatic ws broadcast).
//   GET  /health           200 once listening.
//
// Usage: BENCH_JWT_SECRET=... node server.js --port 9000
'use strict';

const http = require('http');
const crypto = require('crypto');
const jwt = require('jsonwebtoken');
const { WebSocketServer, WebSocket } = require('ws');

function option(name, fallback) {
  const index = process.argv.indexOf(name);
  return index >= 0 ? process.argv[index + 1] : fallback;
}

const port = Number(option('--port', '9000'));
const secret = process.env.BENCH_JWT_SECRET;
if (!secret) {
  console.error('BENCH_JWT_SECRET is required');
  process.exit(2);
}

let position = 0;

function pushOf(record) {
  position += 1;
  const push = {};
  if (record.topic != null) push.topic = record.topic;
  if (record.type != null) push.type = record.type;
  if (record.room != null) push.room = record.room;
  push.payload = record.payload;
  push.meta = {
    receive_time: record.receive_time,
    message_id: record.message_id,
    position: `0:${position}`,
  };
  return push;
}

// Compression off, as the edge has it: per-connection zlib state would dominate memory.
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: true });

const subscribers = new Map();

function broadcast(record) {
  let targets = wss.clients;
  if (record.topic != null) {
    targets = subscribers.get(`${record.topic}:${record.type}`);
    if (targets === undefined) return;
  }
  const data = Buffer.from(JSON.stringify(pushOf(record)));
  for (const client of targets) {
    if (client.readyState === WebSocket.OPEN) client.send(data, { binary: false });
  }
}

function subscribe(ws, topics) {
  const keys = topics ? topics.split(',').filter((k) => k) : [];
  for (const key of keys) {
    let set = subscribers.get(key);
    if (set === undefined) subscribers.set(key, (set = new Set()));
    set.add(ws);
  }
  ws.on('close', () => {
    for (const key of keys) {
      const set = subscribers.get(key);
      if (set === undefined) continue;
      set.delete(ws);
      if (set.size === 0) subscribers.delete(key);
    }
  });
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"status":"healthy"}');
    return;
  }
  if (req.method === 'POST' && req.url === '/publish') {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      let records;
      try {
        records = JSON.parse(Buffer.concat(chunks).toString('utf8')).records;
        if (!Array.isArray(records)) throw new Error('records must be a list');
      } catch (err) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: String(err.message) }));
        return;
      }
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ accepted: records.length }));
      for (const record of records) broadcast(record);
    });
    return;
  }
  res.writeHead(404);
  res.end();
});

function refuse(socket, status, text) {
  socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.destroy();
}

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname !== '/ws') {
    refuse(socket, 404, 'Not Found');
    return;
  }
  const token = url.searchParams.get('token') || '';
  let claims;
  try {
    claims = jwt.verify(token, secret, { algorithms: ['HS256'] });
  } catch (err) {
    refuse(socket, 401, 'Unauthorized');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    subscribe(ws, url.searchParams.get('topics'));
    ws.on('message', () => {});
    ws.on('error', () => {});
    ws.send(
      JSON.stringify({
        action: 'connected',
        status: 'ok',
        connection_id: crypto.randomUUID(),
        subject: claims.sub,
        rooms: [],
        position: `0:${position}`,
        timestamp: Date.now(),
      }),
    );
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`node ws peer listening on ${port}`);
});

process.on('SIGTERM', () => {
  for (const client of wss.clients) client.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
