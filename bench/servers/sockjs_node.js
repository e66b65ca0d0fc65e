// sockjs-node 0.3.24 broadcast server for bench/run.py: every message received goes to every
// client.  Usage: node sockjs_node.js PORT [PREFIX]   (binds 127.0.0.1)
'use strict';
const http = require('http');
const path = require('path');
const sockjs = require(path.join(__dirname, '..', 'node', 'node_modules', 'sockjs'));

const port = parseInt(process.argv[2] || '9000', 10);
const prefix = process.argv[3] || '/broadcast';
const clients = new Set();

const service = sockjs.createServer({ log: () => {}, disconnect_delay: 5000 });
service.on('connection', (conn) => {
  clients.add(conn);
  conn.on('data', (message) => {
    for (const client of clients) client.write(message);
  });
  conn.on('close', () => clients.delete(conn));
});

const server = http.createServer();
service.installHandlers(server, { prefix });
server.listen(port, '127.0.0.1', () => console.log('sockjs-node listening on 127.0.0.1:' + port));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
