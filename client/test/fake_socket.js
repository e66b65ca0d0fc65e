'use strict';
// A stand-in for WebSocket and SockJS: no network, every event fired by the test.
// (In client/test/, so `node --test client/test/` also loads it: it has no tests of its own.)

function fakeSocketClass() {
  class FakeSocket {
    constructor(url, protocols, options) {
      this.url = url;
      this.protocols = protocols;
      this.options = options;
      this.sent = [];
      this.readyState = 0;
      this.closeCalls = 0;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      FakeSocket.instances.push(this);
    }

    send(text) {
      if (this.readyState !== 1) {
        throw new Error('send() on a socket that is not open');
      }
      if (typeof text !== 'string') {
        throw new Error('the client must send text');
      }
      this.sent.push(text);
    }

    close() {
      this.closeCalls += 1;
    }

    // -- what the test does: the server's side --

    /** The parsed messages sent so far. */
    get messages() {
      return this.sent.map((text) => JSON.parse(text));
    }

    open() {
      this.readyState = 1;
      this.onopen({ type: 'open' });
    }

    receive(value) {
      this.onmessage({ data: typeof value === 'string' ? value : JSON.stringify(value) });
    }

    /** The connection ends (the server went away, or an attempt failed). */
    drop(code = 1006, reason = '') {
      this.readyState = 3;
      this.onclose({ type: 'close', code, reason, wasClean: false });
    }
  }
  FakeSocket.instances = [];
  FakeSocket.last = () => FakeSocket.instances[FakeSocket.instances.length - 1];
  return FakeSocket;
}

module.exports = { fakeSocketClass };
