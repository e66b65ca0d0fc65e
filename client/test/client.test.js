'use strict';
// Unit tests of the client with a fake socket: no server, no dependencies.
// Run: node --test client/test/
const { test } = require('node:test');
const assert = require('node:assert/strict');

const realtimeMagic = require('../realtimemagic.js');
const { fakeSocketClass } = require('./fake_socket.js');

const URL_HTTP = 'http://127.0.0.1:9000/pubsub';

function plainClient(options = {}) {
  const WebSocket = fakeSocketClass();
  const client = new realtimeMagic.Client(URL_HTTP, { WebSocket, ...options });
  return { client, WebSocket, socket: WebSocket.last() };
}

// Every subscribe carries an id of the client's own ('rtm.1', 'rtm.2'... per client), so that its
// reply (with the channel's position) comes back: see recovery.test.js.
const subscribe = (channel, id) => ({ action: 'subscribe', payload: { channel }, id });
const unsubscribe = (channel) => ({ action: 'unsubscribe', payload: { channel } });
const publish = (channel, message) => ({ action: 'publish', payload: { channel, message } });
const delivery = (channel, message) => ({ action: 'message', payload: { channel, message } });

test('the module: CommonJS exports, no global in Node', () => {
  assert.equal(typeof realtimeMagic.Client, 'function');
  assert.equal(typeof realtimeMagic.backoff, 'function');
  assert.equal(globalThis.realtimeMagic, undefined);
});

test('calls made before the connection opens are queued and sent in order', () => {
  const { client, socket } = plainClient();
  client.publish('a', 1);
  client.send({ hello: 'app' });
  client.publish('b', { nested: [1, 2] });
  client.send('text');
  client.publish('a', 'last');
  assert.deepEqual(socket.sent, [], 'nothing is sent before open');
  assert.equal(client.connected, false);
  socket.open();
  assert.equal(client.connected, true);
  assert.deepEqual(socket.messages, [
    publish('a', 1), { hello: 'app' }, publish('b', { nested: [1, 2] }), 'text',
    publish('a', 'last'),
  ]);
  client.publish('a', 'after open');
  assert.deepEqual(socket.messages.at(-1), publish('a', 'after open'), 'sent at once');
});

test('the seed: a publish right after new reaches the subscribe made in onopen', () => {
  const { client, socket } = plainClient();
  client.onopen = function () { client.subscribe('the_channel'); };
  const received = [];
  client.onmessage = (message) => received.push(message);
  client.publish('the_channel', "I'm new to this channel");
  socket.open();
  // Ordering rule: restored subscriptions, then onopen's calls, then the queued calls.
  assert.deepEqual(socket.messages, [
    subscribe('the_channel', 'rtm.1'), publish('the_channel', "I'm new to this channel"),
  ]);
  socket.receive(delivery('the_channel', "I'm new to this channel"));
  assert.deepEqual(received, ["I'm new to this channel"]);
});

test('subscriptions made before open go first, each once', () => {
  const { client, socket } = plainClient();
  client.publish('x', 'queued first');
  client.subscribe('x');
  client.subscribe('y');
  client.subscribe('x');  // again: no second request
  socket.open();
  assert.deepEqual(socket.messages, [subscribe('x', 'rtm.1'), subscribe('y', 'rtm.2'),
                                     publish('x', 'queued first')]);
  client.subscribe('y');
  assert.equal(socket.sent.length, 3, 'subscribing again while open sends nothing');
});

test('subscribe callbacks get their channel only; onmessage gets every delivery', () => {
  const { client, socket } = plainClient();
  const calls = [];
  client.subscribe('news', (message, channel) => calls.push(['news cb', message, channel]));
  client.subscribe('news', (message) => calls.push(['news cb 2', message]));
  client.subscribe('sport', function (message, channel) {
    calls.push(['sport cb', message, channel, this === client]);
  });
  client.onmessage = (message, channel) => calls.push(['onmessage', message, channel]);
  socket.open();
  socket.receive(delivery('news', { title: 'hi' }));
  socket.receive(delivery('sport', 3));
  assert.deepEqual(calls, [
    ['news cb', { title: 'hi' }, 'news'], ['news cb 2', { title: 'hi' }],
    ['onmessage', { title: 'hi' }, 'news'],
    ['sport cb', 3, 'sport', true], ['onmessage', 3, 'sport'],
  ]);
  calls.length = 0;
  client.unsubscribe('news');
  assert.deepEqual(socket.messages.at(-1), unsubscribe('news'));
  assert.deepEqual(client.channels(), ['sport']);
  socket.receive(delivery('news', 'late'));  // in flight when we unsubscribed
  assert.deepEqual(calls, [['onmessage', 'late', 'news']], 'the callbacks are gone');
});

test('a callback that throws does not stop the others (reported asynchronously)', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { client, socket } = plainClient();
  const seen = [];
  client.subscribe('c', () => { throw new Error('boom'); });
  client.onmessage = (message) => seen.push(message);
  client.onopen = () => { throw new Error('onopen boom'); };
  client.publish('c', 'queued');
  socket.open();
  assert.deepEqual(socket.messages, [subscribe('c', 'rtm.1'), publish('c', 'queued')],
                   'the queue is flushed even though onopen threw');
  socket.receive(delivery('c', 1));
  assert.deepEqual(seen, [1]);
  assert.throws(() => t.mock.timers.tick(0), /boom/);
});

test('the application\'s own messages and replies', () => {
  const { client, socket } = plainClient();
  const messages = [];
  const replies = [];
  client.onmessage = (message, channel) => messages.push([message, channel]);
  client.onreply = (reply) => replies.push(reply);
  socket.open();
  socket.receive({ echo: 'hello' });            // conn.send({'echo': 'hello'})
  socket.receive('"just a string"');
  socket.receive({ action: 'subscribed', payload: { channel: 'c' }, id: 7 });
  assert.deepEqual(messages, [[{ echo: 'hello' }, undefined], ['just a string', undefined]]);
  assert.deepEqual(replies, [{ action: 'subscribed', channel: 'c', id: 7 }]);
});

test('text that is not JSON goes to onerror, never to onmessage', () => {
  const { client, socket } = plainClient();
  const errors = [];
  const messages = [];
  client.onerror = (error) => errors.push(error);
  client.onmessage = (message) => messages.push(message);
  socket.open();
  socket.receive('not JSON at all');
  socket.receive('{"action":"message","payload":{"channel":"c","message":NaN}}');
  socket.receive({ action: 'message', payload: { channel: 'c', message: 'next' } });
  assert.deepEqual(errors.map((error) => [error.code, error.data]), [
    ['not_json', 'not JSON at all'],
    ['not_json', '{"action":"message","payload":{"channel":"c","message":NaN}}'],
  ]);
  assert.match(errors[0].reason, /not JSON/);
  assert.deepEqual(messages, ['next'], 'the connection goes on');
});

test('without onerror, errors go to console.warn', (t) => {
  const warn = t.mock.method(console, 'warn', () => {});
  const { socket } = plainClient();
  socket.open();
  socket.receive('NaN');
  assert.equal(warn.mock.callCount(), 1);
  assert.match(warn.mock.calls[0].arguments[0], /not JSON/);
});

test('error replies go to onerror with code, reason, channel and id', () => {
  const { client, socket } = plainClient();
  const errors = [];
  const messages = [];
  client.onerror = (error) => errors.push(error);
  client.onmessage = (message) => messages.push(message);
  socket.open();
  socket.receive({ action: 'error', id: 'req-1',
                   payload: { code: 'forbidden', reason: 'not for you', channel: 'secret' } });
  socket.receive({ action: 'error',
                   payload: { code: 'bad_request', reason: 'message is not JSON' } });
  assert.deepEqual(errors, [
    { code: 'forbidden', reason: 'not for you', channel: 'secret', id: 'req-1' },
    { code: 'bad_request', reason: 'message is not JSON', channel: undefined, id: undefined },
  ]);
  assert.deepEqual(messages, [], 'errors are not messages');
});

test('backoff: exponential, jittered, within [minDelay, maxDelay]', () => {
  const { backoff } = realtimeMagic;
  // The bounds of each attempt: [min * 2^n, min * 2^(n+1)], capped at max.
  assert.equal(backoff(0, 100, 10000, () => 0), 100);
  assert.equal(backoff(0, 100, 10000, () => 0.999999), 100 + 0.999999 * 100);
  assert.equal(backoff(1, 100, 10000, () => 0), 200);
  assert.equal(backoff(3, 100, 10000, () => 1), 1600);
  assert.equal(backoff(20, 100, 10000, () => 0), 5000, 'capped: [max / 2, max]');
  assert.equal(backoff(20, 100, 10000, () => 1), 10000);
  assert.equal(backoff(1e6, 100, 10000, () => 0.5), 7500, 'no overflow');
  assert.equal(backoff(5, 300, 400, () => 0), 300, 'never below minDelay');
  assert.equal(backoff(0, 500, 100, () => 1), 500, 'maxDelay below minDelay: minDelay');
  for (let attempt = 0; attempt < 12; attempt++) {
    const low = Math.min(100 * 2 ** attempt, 5000);
    const high = Math.min(100 * 2 ** (attempt + 1), 10000);
    const delays = Array.from({ length: 200 }, () => backoff(attempt, 100, 10000));
    for (const delay of delays) {
      assert.ok(delay >= low && delay <= high,
                `attempt ${attempt}: ${delay} not in [${low}, ${high}]`);
    }
    assert.ok(new Set(delays).size > 150, 'jitter: the delays differ');
  }
});

test('reconnects after the waits of the backoff, and resets it once open', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let draw = 0.5;
  const { client, WebSocket, socket } = plainClient({ minDelay: 100, maxDelay: 1000,
                                                      random: () => draw });
  const closes = [];
  client.onclose = (event) => closes.push(event);
  socket.open();
  socket.drop(1001, 'going away');
  assert.equal(client.connected, false);
  assert.equal(closes.length, 1);
  assert.deepEqual(
    { code: closes[0].code, reason: closes[0].reason, wasOpen: closes[0].wasOpen,
      reconnecting: closes[0].reconnecting, delay: closes[0].delay },
    { code: 1001, reason: 'going away', wasOpen: true, reconnecting: true, delay: 150 });
  t.mock.timers.tick(149);
  assert.equal(WebSocket.instances.length, 1, 'not before the delay');
  t.mock.timers.tick(1);
  assert.equal(WebSocket.instances.length, 2, 'reconnected after 150 ms');
  // Failed attempts double the bounds: 300, 600, then capped at [500, 1000].
  const expected = [300, 600, 750, 750];
  for (const delay of expected) {
    WebSocket.last().drop();
    assert.equal(closes.at(-1).delay, delay);
    assert.equal(closes.at(-1).wasOpen, false);
    t.mock.timers.tick(delay - 1);
    const count = WebSocket.instances.length;
    t.mock.timers.tick(1);
    assert.equal(WebSocket.instances.length, count + 1);
  }
  assert.equal(client.attempts, 5);
  WebSocket.last().open();
  assert.equal(client.attempts, 0);
  draw = 0;
  WebSocket.last().drop();
  assert.equal(closes.at(-1).delay, 100, 'back to minDelay after a connection opened');
});

test('a refused subscription leaves channels() and is not subscribed again', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { client, WebSocket, socket } = plainClient({ minDelay: 10, maxDelay: 10 });
  const errors = [];
  client.onerror = (error) => errors.push({ error, channels: client.channels() });
  client.subscribe('ok');
  client.subscribe('secret', () => {});
  socket.open();
  assert.deepEqual(socket.messages, [subscribe('ok', 'rtm.1'), subscribe('secret', 'rtm.2')]);
  socket.receive({ action: 'subscribed', id: 'rtm.1', payload: { channel: 'ok' } });
  socket.receive({ action: 'error', id: 'rtm.2',
                   payload: { code: 'forbidden', reason: 'not yours', channel: 'secret' } });
  assert.deepEqual(client.channels(), ['ok']);
  assert.deepEqual(errors, [{
    error: { code: 'forbidden', reason: 'not yours', channel: 'secret', id: undefined },
    channels: ['ok'],  // already gone when onerror runs
  }]);
  // An error reply to another request on that channel (a publish) touches no subscription.
  socket.receive({ action: 'error', payload: { code: 'forbidden', reason: 'no', channel: 'ok' } });
  assert.deepEqual(client.channels(), ['ok']);
  socket.drop();
  t.mock.timers.tick(10);
  WebSocket.last().open();
  assert.deepEqual(WebSocket.last().messages, [subscribe('ok', 'rtm.3')]);
  // Subscribing again after a refusal asks again.
  client.subscribe('secret');
  assert.deepEqual(WebSocket.last().messages.at(-1), subscribe('secret', 'rtm.4'));
});

test('resubscribes every channel after a reconnect, without duplicates', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { client, WebSocket, socket } = plainClient({ minDelay: 10, maxDelay: 10 });
  let opens = 0;
  client.onopen = () => { opens += 1; client.subscribe('a'); };  // again on each open
  client.subscribe('a');
  client.subscribe('b', () => {});
  client.publish('a', 'first');
  socket.open();
  assert.deepEqual(socket.messages, [subscribe('a', 'rtm.1'), subscribe('b', 'rtm.2'),
                                     publish('a', 'first')]);
  socket.drop();
  // While disconnected: subscribe c (and c again), unsubscribe b, publish.
  client.subscribe('c');
  client.subscribe('c');
  client.unsubscribe('b');
  client.publish('c', 'while away');
  t.mock.timers.tick(10);
  const second = WebSocket.last();
  assert.notEqual(second, socket);
  assert.deepEqual(second.sent, [], 'nothing before open');
  second.open();
  assert.deepEqual(second.messages, [subscribe('a', 'rtm.3'), subscribe('c', 'rtm.4'),
                                      publish('c', 'while away')]);
  assert.equal(opens, 2);
  // Once more, nothing queued: only the subscriptions.
  second.drop();
  t.mock.timers.tick(10);
  WebSocket.last().open();
  assert.deepEqual(WebSocket.last().messages, [subscribe('a', 'rtm.5'), subscribe('c', 'rtm.6')]);
  assert.deepEqual(socket.messages.length, 3, 'the old socket got nothing more');
});

test('events of an old socket are ignored', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { client, WebSocket, socket } = plainClient({ minDelay: 10, maxDelay: 10 });
  const messages = [];
  client.onmessage = (message) => messages.push(message);
  socket.open();
  socket.drop();
  t.mock.timers.tick(10);
  socket.receive(delivery('a', 'stale'));
  socket.drop();
  assert.deepEqual(messages, []);
  assert.equal(WebSocket.instances.length, 2);
  t.mock.timers.tick(1000);
  assert.equal(WebSocket.instances.length, 2, 'a stale close schedules nothing');
});

test('close() stops reconnecting', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { client, WebSocket, socket } = plainClient({ minDelay: 10, maxDelay: 20 });
  const closes = [];
  const messages = [];
  client.onclose = (event) => closes.push(event);
  client.onmessage = (message) => messages.push(message);
  socket.open();
  client.close();
  assert.equal(socket.closeCalls, 1);
  assert.equal(client.connected, false);
  socket.receive(delivery('a', 'after close'));
  socket.drop(1000);
  assert.equal(closes.length, 1);
  assert.equal(closes[0].reconnecting, false);
  assert.equal(closes[0].delay, null);
  client.publish('a', 'dropped');
  client.send('dropped');
  t.mock.timers.tick(60000);
  assert.equal(WebSocket.instances.length, 1);
  assert.deepEqual(socket.sent, []);
  assert.deepEqual(messages, []);
});

test('close() while waiting to reconnect, and close() in onclose', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const first = plainClient({ minDelay: 10, maxDelay: 20 });
  first.socket.open();
  first.socket.drop();
  first.client.close();  // the timer is pending
  t.mock.timers.tick(60000);
  assert.equal(first.WebSocket.instances.length, 1);

  const second = plainClient({ minDelay: 10, maxDelay: 20 });
  second.client.onclose = function () { this.close(); };
  second.socket.drop();  // the first attempt fails
  t.mock.timers.tick(60000);
  assert.equal(second.WebSocket.instances.length, 1);

  const third = plainClient({ reconnect: false });
  third.socket.open();
  third.socket.drop();
  t.mock.timers.tick(60000);
  assert.equal(third.WebSocket.instances.length, 1, 'reconnect: false');
});

test('close() before open drops the queue', () => {
  const { client, socket } = plainClient();
  client.publish('a', 1);
  client.close();
  socket.open();  // a socket that opens anyway
  assert.deepEqual(socket.sent, []);
});

test('plain WebSocket URL derivation', () => {
  const { websocketUrl, sockjsUrl } = realtimeMagic;
  assert.equal(websocketUrl('http://127.0.0.1:9000/pubsub'),
               'ws://127.0.0.1:9000/pubsub/websocket');
  assert.equal(websocketUrl('https://example.org/pubsub'), 'wss://example.org/pubsub/websocket');
  assert.equal(websocketUrl('http://example.org/pubsub/'), 'ws://example.org/pubsub/websocket');
  assert.equal(websocketUrl('http://example.org'), 'ws://example.org/websocket', 'empty prefix');
  assert.equal(websocketUrl('HTTP://Example.ORG:80/pubsub'), 'ws://example.org/pubsub/websocket');
  assert.equal(websocketUrl('https://example.org:8443/rt/pubsub?token=a%2Fb&x=1#frag'),
               'wss://example.org:8443/rt/pubsub/websocket?token=a%2Fb&x=1', 'query kept');
  assert.equal(websocketUrl('ws://127.0.0.1:9000/pubsub/websocket'),
               'ws://127.0.0.1:9000/pubsub/websocket', 'ws: as given');
  assert.equal(websocketUrl('wss://h/custom?t=1'), 'wss://h/custom?t=1');
  assert.equal(websocketUrl('/pubsub', 'https://site.example/app/page.html'),
               'wss://site.example/pubsub/websocket', 'relative to the page');
  assert.equal(websocketUrl('pubsub', 'http://site.example/app/page.html'),
               'ws://site.example/app/pubsub/websocket');
  assert.throws(() => websocketUrl('ftp://h/pubsub'), /not an http/);
  assert.throws(() => websocketUrl('/pubsub'), TypeError, 'relative without a page');
  assert.equal(sockjsUrl('http://h:1/pubsub'), 'http://h:1/pubsub');
  assert.equal(sockjsUrl('wss://h/pubsub/websocket?t=1'), 'https://h/pubsub?t=1');
});

test('transport: plain WebSocket to {prefix}/websocket when there is no SockJS', () => {
  const { client, socket } = plainClient();
  assert.equal(client.transport, 'websocket');
  assert.equal(socket.url, 'ws://127.0.0.1:9000/pubsub/websocket');
  assert.equal(client.socket, socket);
});

test('transport: SockJS when present, with its transports option', () => {
  const SockJS = fakeSocketClass();
  const WebSocket = fakeSocketClass();
  const client = new realtimeMagic.Client(URL_HTTP, {
    SockJS, WebSocket, transports: ['xhr-streaming'], sockjsOptions: { timeout: 1234 },
  });
  assert.equal(client.transport, 'sockjs');
  assert.equal(WebSocket.instances.length, 0);
  const socket = SockJS.last();
  assert.equal(socket.url, URL_HTTP);
  assert.deepEqual(socket.options, { transports: ['xhr-streaming'], timeout: 1234 });
  client.publish('a', 1);
  socket.open();
  assert.deepEqual(socket.messages, [publish('a', 1)]);

  const forced = new realtimeMagic.Client(URL_HTTP, { SockJS, WebSocket, transport: 'websocket' });
  assert.equal(forced.transport, 'websocket');
  assert.equal(WebSocket.last().url, 'ws://127.0.0.1:9000/pubsub/websocket');

  // Found on the global object too (a page that loaded sockjs-client).
  globalThis.SockJS = SockJS;
  try {
    const count = SockJS.instances.length;
    const auto = new realtimeMagic.Client(URL_HTTP, { WebSocket });
    assert.equal(auto.transport, 'sockjs');
    assert.equal(SockJS.instances.length, count + 1);
  } finally {
    delete globalThis.SockJS;
  }
  assert.throws(() => new realtimeMagic.Client(URL_HTTP, { WebSocket, transport: 'sockjs' }),
                /needs sockjs-client/);
  assert.throws(() => new realtimeMagic.Client(URL_HTTP, { WebSocket, transport: 'pigeon' }),
                /unknown transport/);
});

test('messages are encoded when the call is made', () => {
  const { client, socket } = plainClient();
  const message = { count: 1 };
  client.publish('a', message);
  message.count = 2;
  client.publish('a');  // no message: null
  client.send();        // nothing: null
  assert.throws(() => client.subscribe(''), TypeError);
  assert.throws(() => client.publish(42, 'x'), TypeError);
  socket.open();
  assert.deepEqual(socket.messages, [publish('a', { count: 1 }), publish('a', null), null]);
});
