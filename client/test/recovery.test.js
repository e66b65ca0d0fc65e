'use strict';
// History, recovery and presence (docs/history.md) with a fake socket: positions, `since` on
// re-subscription, "recovered": false, duplicates, presence() and join/leave.
// Run: node --test client/test/
const { test } = require('node:test');
const assert = require('node:assert/strict');

const realtimeMagic = require('../realtimemagic.js');
const { fakeSocketClass } = require('./fake_socket.js');

const URL_HTTP = 'http://127.0.0.1:9000/pubsub';

function plainClient(options = {}) {
  const WebSocket = fakeSocketClass();
  const client = new realtimeMagic.Client(URL_HTTP, { WebSocket, minDelay: 10, maxDelay: 10,
                                                      ...options });
  return { client, WebSocket, socket: WebSocket.last() };
}

/** A delivery with a position (a channel with history). */
const at = (channel, message, offset, epoch = 'e1') => (
  { action: 'message', payload: { channel, message, offset, epoch } });
const subscribe = (channel, id, since) => (
  { action: 'subscribe', payload: since ? { channel, since } : { channel }, id });
const subscribed = (id, payload) => ({ action: 'subscribed', payload, id });

/** Drop the connection, let the backoff pass, open the next one: the new socket. */
function reconnect(t, WebSocket) {
  WebSocket.last().drop();
  t.mock.timers.tick(10);
  const socket = WebSocket.last();
  socket.open();
  return socket;
}

/** The ids of the subscribes `socket` sent, by channel. */
function subscribeIds(socket) {
  const ids = {};
  for (const message of socket.messages) {
    if (message.action === 'subscribe') { ids[message.payload.channel] = message.id; }
  }
  return ids;
}

test('positions are tracked per channel; deliveries get meta {offset, epoch}', () => {
  const { client, socket } = plainClient();
  const calls = [];
  client.subscribe('h', (message, channel, meta) => calls.push(['cb', message, channel, meta]));
  client.subscribe('other');
  client.onmessage = function (message, channel, meta) {
    calls.push(['onmessage', message, channel, meta, arguments.length]);
  };
  socket.open();
  assert.equal(client.position('h'), null, 'nothing seen yet');
  socket.receive(at('h', 'one', 41, 'k3v9'));
  socket.receive(at('h', 'two', 42, 'k3v9'));
  socket.receive({ action: 'message', payload: { channel: 'other', message: 'plain' } });
  assert.deepEqual(calls, [
    ['cb', 'one', 'h', { offset: 41, epoch: 'k3v9' }],
    ['onmessage', 'one', 'h', { offset: 41, epoch: 'k3v9' }, 3],
    ['cb', 'two', 'h', { offset: 42, epoch: 'k3v9' }],
    ['onmessage', 'two', 'h', { offset: 42, epoch: 'k3v9' }, 3],
    ['onmessage', 'plain', 'other', undefined, 2],
  ]);
  assert.deepEqual(client.position('h'), { offset: 42, epoch: 'k3v9' });
  assert.equal(client.position('other'), null, 'a channel without history has no position');
  assert.equal(client.position('unknown'), null);
});

test('since is sent on re-subscription only for the channels with a position', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { client, WebSocket, socket } = plainClient();
  const replies = [];
  client.onreply = (reply) => replies.push(reply);
  client.subscribe('seen');      // gets messages with positions
  client.subscribe('empty');     // history on, no message yet: the reply gives the position
  client.subscribe('plain');     // no history: no position ever
  client.subscribe('raced');     // a delivery before the reply: the delivery wins
  socket.open();
  assert.deepEqual(socket.messages, [
    subscribe('seen', 'rtm.1'), subscribe('empty', 'rtm.2'), subscribe('plain', 'rtm.3'),
    subscribe('raced', 'rtm.4'),
  ], 'every subscribe has an id, none a since on the first connection');
  socket.receive(subscribed('rtm.1', { channel: 'seen', recoverable: true, epoch: 'e1',
                                       offset: 9 }));
  socket.receive(at('seen', 'ten', 10));
  socket.receive(at('seen', 'eleven', 11));
  socket.receive(subscribed('rtm.2', { channel: 'empty', recoverable: true, epoch: 'e1',
                                       offset: 0 }));
  socket.receive(subscribed('rtm.3', { channel: 'plain' }));
  socket.receive(at('raced', 'first', 5));
  socket.receive(subscribed('rtm.4', { channel: 'raced', recoverable: true, epoch: 'e1',
                                       offset: 3 }));
  assert.deepEqual(replies, [], "the client's own replies do not reach onreply");
  assert.deepEqual(client.position('empty'), { offset: 0, epoch: 'e1' });
  assert.deepEqual(client.position('raced'), { offset: 5, epoch: 'e1' });

  const second = reconnect(t, WebSocket);
  assert.deepEqual(second.messages, [
    subscribe('seen', 'rtm.5', { offset: 11, epoch: 'e1' }),
    subscribe('empty', 'rtm.6', { offset: 0, epoch: 'e1' }),
    subscribe('plain', 'rtm.7'),
    subscribe('raced', 'rtm.8', { offset: 5, epoch: 'e1' }),
  ]);
});

test('a subscribe made while connected has an id too, and its reply sets the position', () => {
  const { client, socket } = plainClient();
  socket.open();
  client.subscribe('late');
  assert.deepEqual(socket.messages, [subscribe('late', 'rtm.1')]);
  socket.receive(subscribed('rtm.1', { channel: 'late', recoverable: true, epoch: 'e7',
                                       offset: 12 }));
  assert.deepEqual(client.position('late'), { offset: 12, epoch: 'e7' });
});

test('recovered: the missed messages arrive, the position moves on, no callback', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { client, WebSocket, socket } = plainClient();
  const got = [];
  const failures = [];
  client.onrecoveryfailed = (channel, reply) => failures.push([channel, reply]);
  client.subscribe('h', (message) => got.push(message));
  socket.open();
  socket.receive(at('h', 42, 42));
  const second = reconnect(t, WebSocket);
  const { h: id } = subscribeIds(second);
  assert.deepEqual(second.messages, [subscribe('h', id, { offset: 42, epoch: 'e1' })]);
  second.receive(subscribed(id, { channel: 'h', recoverable: true, epoch: 'e1', offset: 45,
                                  recovered: true }));
  for (const offset of [43, 44, 45, 46]) { second.receive(at('h', offset, offset)); }
  assert.deepEqual(got, [42, 43, 44, 45, 46]);
  assert.deepEqual(failures, []);
  assert.equal(client.recoveryFailed.h, undefined);
  assert.deepEqual(client.position('h'), { offset: 46, epoch: 'e1' });
  const third = reconnect(t, WebSocket);
  assert.deepEqual(third.messages[0].payload.since, { offset: 46, epoch: 'e1' });
});

test('recovered: false calls onrecoveryfailed and sets the flag; a later recovery clears it',
  (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { client, WebSocket, socket } = plainClient();
    const failures = [];
    const got = [];
    client.onrecoveryfailed = function (channel, reply) {
      failures.push([channel, reply, this === client]);
    };
    client.onmessage = (message, channel, meta) => got.push([message, meta]);
    client.subscribe('h');
    client.subscribe('fine');
    socket.open();
    socket.receive(at('h', 'old', 42, 'old-epoch'));
    socket.receive(at('fine', 'f1', 1));

    const second = reconnect(t, WebSocket);
    const ids = subscribeIds(second);
    const refusal = { channel: 'h', recoverable: true, epoch: 'new-epoch', offset: 3,
                      recovered: false };
    second.receive(subscribed(ids.h, refusal));
    second.receive(subscribed(ids.fine, { channel: 'fine', recoverable: true, epoch: 'e1',
                                          offset: 1, recovered: true }));
    assert.deepEqual(failures, [['h', refusal, true]]);
    assert.deepEqual(client.recoveryFailed, { h: true }, 'only the channel that failed');
    // Live from the new epoch's latest offset: the next message is 4, not a duplicate.
    second.receive(at('h', 'new', 4, 'new-epoch'));
    assert.deepEqual(got.at(-1), ['new', { offset: 4, epoch: 'new-epoch' }]);

    // The next reconnection asks from the new position, and recovers: the flag goes.
    const third = reconnect(t, WebSocket);
    const again = subscribeIds(third);
    assert.deepEqual(third.messages.find((m) => m.payload.channel === 'h').payload.since,
                     { offset: 4, epoch: 'new-epoch' });
    third.receive(subscribed(again.h, { channel: 'h', recoverable: true, epoch: 'new-epoch',
                                        offset: 4, recovered: true }));
    assert.deepEqual(client.recoveryFailed, {});
    assert.equal(failures.length, 1);
  });

test('recovered: false with no message seen since: the reply position replaces a stale one',
  (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { client, WebSocket, socket } = plainClient();
    const got = [];
    client.subscribe('h', (message) => got.push(message));
    socket.open();
    socket.receive(at('h', 'x', 50, 'same'));
    const second = reconnect(t, WebSocket);
    // The server's counter went back (its history was lost but it kept the epoch): were the
    // client to keep 50, it would drop 1..50 as duplicates.
    second.receive(subscribed(subscribeIds(second).h, { channel: 'h', recoverable: true,
                                                        epoch: 'same', offset: 2,
                                                        recovered: false }));
    assert.deepEqual(client.position('h'), { offset: 2, epoch: 'same' });
    second.receive(at('h', 'three', 3, 'same'));
    assert.deepEqual(got, ['x', 'three']);
  });

test('recovered: false from a channel without history any more: no position, no since', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { client, WebSocket, socket } = plainClient();
  const failures = [];
  client.onrecoveryfailed = (channel) => failures.push(channel);
  client.subscribe('h');
  socket.open();
  socket.receive(at('h', 'x', 5));
  const second = reconnect(t, WebSocket);
  // A server that ignores since (or has no history for the channel) answers without recovered.
  second.receive(subscribed(subscribeIds(second).h, { channel: 'h' }));
  assert.deepEqual(failures, ['h']);
  assert.equal(client.recoveryFailed.h, true);
  assert.equal(client.position('h'), null);
  const third = reconnect(t, WebSocket);
  assert.deepEqual(third.messages, [subscribe('h', subscribeIds(third).h)], 'no since');
});

test('duplicates (offset not above the last of the same epoch) are dropped', () => {
  const { client, socket } = plainClient();
  const got = [];
  const callbacks = [];
  client.subscribe('h', (message) => callbacks.push(message));
  client.onmessage = (message, channel) => got.push([channel, message]);
  socket.open();
  socket.receive(at('h', 'one', 1));
  socket.receive(at('h', 'two', 2));
  socket.receive(at('h', 'two again', 2));
  socket.receive(at('h', 'one again', 1));
  socket.receive(at('h', 'three', 3));
  socket.receive(at('h', 'a new epoch starts low', 1, 'e2'));
  socket.receive(at('h', 'e2 again', 1, 'e2'));
  socket.receive(at('h', 'gap is fine', 5, 'e2'));
  // A channel the client is not subscribed to (in flight after unsubscribe): passed on as is.
  socket.receive(at('gone', 'g', 1));
  socket.receive(at('gone', 'g', 1));
  const expected = ['one', 'two', 'three', 'a new epoch starts low', 'gap is fine'];
  assert.deepEqual(got, [...expected.map((m) => ['h', m]), ['gone', 'g'], ['gone', 'g']]);
  assert.deepEqual(callbacks, expected);
  assert.deepEqual(client.position('h'), { offset: 5, epoch: 'e2' });
});

test('unsubscribe forgets the position and the flag; late replies are ignored', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { client, WebSocket, socket } = plainClient();
  client.subscribe('h');
  socket.open();
  socket.receive(at('h', 'x', 7));
  const second = reconnect(t, WebSocket);
  const id = subscribeIds(second).h;
  second.receive(subscribed(id, { channel: 'h', recoverable: true, epoch: 'e9', offset: 1,
                                  recovered: false }));
  assert.equal(client.recoveryFailed.h, true);
  client.unsubscribe('h');
  assert.deepEqual(client.recoveryFailed, {});
  assert.equal(client.position('h'), null);
  client.subscribe('h');
  const fresh = second.messages.at(-1);
  assert.deepEqual(fresh, subscribe('h', fresh.id), 'subscribed anew: no since');
  // A reply to the old request, after the channel was subscribed anew: not for this entry.
  second.receive(subscribed(id, { channel: 'h', recoverable: true, epoch: 'e9', offset: 1,
                                  recovered: false }));
  assert.equal(client.position('h'), null);
  assert.deepEqual(client.recoveryFailed, {});
});

test('an error reply to a subscribe goes to onerror, without the client\'s own id', () => {
  const { client, socket } = plainClient();
  const errors = [];
  const replies = [];
  client.onerror = (error) => errors.push(error);
  client.onreply = (reply) => replies.push(reply);
  client.subscribe('secret');
  socket.open();
  socket.receive({ action: 'error', id: 'rtm.1',
                   payload: { code: 'forbidden', reason: 'no', channel: 'secret' } });
  assert.deepEqual(errors, [{ code: 'forbidden', reason: 'no', channel: 'secret',
                              id: undefined }]);
  // The application's own requests (send() with an id) keep their replies.
  client.send({ action: 'subscribe', payload: { channel: 'c' }, id: 'rtm.99' });
  socket.receive(subscribed('rtm.99', { channel: 'c' }));
  assert.deepEqual(replies, [{ action: 'subscribed', channel: 'c', id: 'rtm.99' }]);
});

test('recover: false: no id, no since, no duplicate check', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { client, WebSocket, socket } = plainClient({ recover: false });
  const got = [];
  client.subscribe('h', (message, channel, meta) => got.push([message, meta]));
  socket.open();
  socket.receive(at('h', 'a', 1));
  socket.receive(at('h', 'a', 1));
  const second = reconnect(t, WebSocket);
  assert.deepEqual(socket.messages, [{ action: 'subscribe', payload: { channel: 'h' } }]);
  assert.deepEqual(second.messages, [{ action: 'subscribe', payload: { channel: 'h' } }]);
  assert.deepEqual(got, [['a', { offset: 1, epoch: 'e1' }], ['a', { offset: 1, epoch: 'e1' }]]);
});

test('presence() resolves with the clients, rejects on an error reply', async () => {
  const { client, socket } = plainClient();
  const errors = [];
  client.onerror = (error) => errors.push(error);
  client.subscribe('room');
  const early = client.presence('room');  // queued until the connection opens
  assert.deepEqual(socket.sent, []);
  socket.open();
  const [sub, request] = socket.messages;
  assert.equal(sub.action, 'subscribe');
  assert.deepEqual(request, { action: 'presence', payload: { channel: 'room' }, id: 'rtm.1' });
  const clients = [{ session: 's1' }, { user: 'ann' }];
  socket.receive({ action: 'presence', payload: { channel: 'room', clients }, id: 'rtm.1' });
  assert.deepEqual(await early, clients);

  const refused = client.presence('secret');
  const { id } = socket.messages.at(-1);
  socket.receive({ action: 'error', id,
                   payload: { code: 'forbidden', reason: 'not for you', channel: 'secret' } });
  await assert.rejects(refused, (error) => {
    assert.ok(error instanceof Error);
    assert.equal(error.code, 'forbidden');
    assert.equal(error.reason, 'not for you');
    assert.equal(error.channel, 'secret');
    return true;
  });
  assert.deepEqual(errors, [], 'the rejection is the report: not onerror too');
  assert.throws(() => client.presence(''), TypeError);
});

test('presence() is rejected when the connection is lost before the reply, or on close()',
  async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { client, WebSocket, socket } = plainClient();
    socket.open();
    const lost = client.presence('room');
    socket.drop();
    await assert.rejects(lost, { code: 'disconnected' });
    const queued = client.presence('room');  // while disconnected: sent on the next connection
    t.mock.timers.tick(10);
    const second = WebSocket.last();
    second.open();
    const request = second.messages.at(-1);
    assert.equal(request.action, 'presence');
    second.receive({ action: 'presence', payload: { channel: 'room', clients: [] },
                     id: request.id });
    assert.deepEqual(await queued, []);
    const closing = client.presence('room');
    client.close();
    await assert.rejects(closing, { code: 'closed' });
    await assert.rejects(client.presence('room'), { code: 'closed' });
  });

test('join and leave go to onjoin and onleave, not onmessage', () => {
  const { client, socket } = plainClient();
  const events = [];
  client.onjoin = function (who, channel) { events.push(['join', who, channel, this === client]); };
  client.onleave = (who, channel) => events.push(['leave', who, channel]);
  client.onmessage = (message) => events.push(['message', message]);
  client.subscribe('room');
  socket.open();
  socket.receive({ action: 'join', payload: { channel: 'room', client: { user: 'ann' } } });
  socket.receive({ action: 'leave', payload: { channel: 'room', client: { session: 's1' } } });
  assert.deepEqual(events, [['join', { user: 'ann' }, 'room', true],
                            ['leave', { session: 's1' }, 'room']]);
});
