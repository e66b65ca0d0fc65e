/*
 * Check a realtimemagic deployment through its load balancer with the real SockJS client
 * (sockjs-client 1.x): every transport delivers every message to every subscriber exactly once.
 *
 *     NODE_PATH=tests/js/node_modules node examples/deploy/check_pubsub.js http://lb:8000/pubsub
 *     echo '{"url": "http://lb:8000/pubsub", "clients": 5}' | node examples/deploy/check_pubsub.js
 *
 * (NODE_PATH: wherever `npm install sockjs-client` put it.)  For each transport, `clients`
 * SockJS connections subscribe to one fresh channel; once all are subscribed (and, with
 * `idle_ms`, have stayed idle that long, which the balancer's timeouts must survive), each one
 * publishes `messages` messages, and one more message is published through each internal API
 * of `api_urls` (POST /api/publish, so that messages surely start on every instance).  Every
 * connection must then receive every message once: none missing, none twice (it waits
 * `settle_ms` for duplicates).  The session ids are `<tag>_<transport>_<n>`, so that the
 * instances' access logs show where each session went (tests/test_deploy_haproxy.py).
 *
 * Prints one JSON line (the job's outcome, per client) and exits 0 when everything arrived
 * exactly once, 1 otherwise.  In a browser page, after sockjs.min.js:
 * `window.deployCheck.run(job)` is a Promise of the same result.
 */
(function (root) {
  'use strict';

  var DEFAULTS = {
    url: 'http://127.0.0.1:8000/pubsub',
    transports: ['websocket', 'xhr-streaming', 'eventsource', 'xhr-polling'],
    clients: 3,          // connections per transport, or {transport: connections}
    messages: 2,         // published by each connection
    channel: null,       // default: a fresh one
    tag: null,           // default: random; prefix of the session ids
    idle_ms: 0,          // stay idle this long once subscribed, before publishing
    api_urls: [],        // internal APIs (http://host:port) to publish one message through each
    api_key: '',
    timeout_ms: 15000,   // for each step
    settle_ms: 500       // wait this long after the last expected message, for duplicates
  };

  function randomTag() {
    return Math.random().toString(36).slice(2, 10);
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function keyOf(message) {
    return message && typeof message === 'object' ? message.from + '#' + message.n
                                                   : JSON.stringify(message);
  }

  // One SockJS connection with the pub/sub protocol (docs/protocol.md).
  function Client(SockJS, job, transport, index) {
    var self = this;
    this.transport = transport;
    this.name = transport.replace(/[^a-z]/g, '') + '_' + index;
    this.sessionId = job.tag + '_' + this.name;
    this.opened = false;
    this.subscribed = false;
    this.usedTransport = null;
    this.received = [];      // keys of the deliveries on job.channel, in arrival order
    this.errors = [];        // error replies and frames that are not JSON
    this.closeEvent = null;
    this.idle = false;       // a close while idle is a failure of its own
    this.closedWhileIdle = false;
    this.waiters = [];
    this.sock = new SockJS(job.url, null, {
      transports: [transport], timeout: job.timeout_ms,
      sessionId: function () { return self.sessionId; }
    });
    this.sock.onopen = function () {
      self.opened = true;
      self.usedTransport = self.sock.transport;
      self.send({ action: 'subscribe', payload: { channel: job.channel }, id: 'sub' });
      self.poke();
    };
    this.sock.onmessage = function (event) {
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        self.errors.push('not JSON: ' + String(event.data).slice(0, 200));
        return;
      }
      if (message.action === 'subscribed' && message.id === 'sub') {
        self.subscribed = true;
      } else if (message.action === 'message' && message.payload &&
                 message.payload.channel === job.channel) {
        self.received.push(keyOf(message.payload.message));
      } else if (message.action === 'error') {
        self.errors.push(JSON.stringify(message));
      }
      self.poke();
    };
    this.sock.onclose = function (event) {
      self.closeEvent = { code: event.code, reason: event.reason, wasClean: event.wasClean };
      if (self.idle) {
        self.closedWhileIdle = true;
      }
      self.poke();
    };
  }

  Client.prototype.send = function (message) {
    this.sock.send(JSON.stringify(message));
  };

  Client.prototype.poke = function () {
    var waiting = this.waiters;
    this.waiters = [];
    for (var i = 0; i < waiting.length; i++) {
      if (!waiting[i]()) {
        this.waiters.push(waiting[i]);
      }
    }
  };

  // Resolves when predicate(client) is true; rejects when the connection closes first, or
  // after timeoutMs.
  Client.prototype.waitFor = function (what, predicate, timeoutMs) {
    var self = this;
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () {
        reject(new Error(self.name + ': timed out after ' + timeoutMs + ' ms waiting for ' +
                         what + ' (received ' + self.received.length + ', errors ' +
                         JSON.stringify(self.errors) + ', close ' +
                         JSON.stringify(self.closeEvent) + ')'));
      }, timeoutMs);
      function check() {
        if (predicate(self)) {
          clearTimeout(timer);
          resolve();
          return true;
        }
        if (self.closeEvent) {
          clearTimeout(timer);
          reject(new Error(self.name + ': closed while waiting for ' + what + ': ' +
                           JSON.stringify(self.closeEvent)));
          return true;
        }
        return false;
      }
      if (!check()) {
        self.waiters.push(check);
      }
    });
  };

  Client.prototype.describe = function () {
    return { name: this.name, transport: this.transport, used_transport: this.usedTransport,
             session_id: this.sessionId, opened: this.opened, subscribed: this.subscribed,
             received: this.received, errors: this.errors, close: this.closeEvent,
             closed_while_idle: this.closedWhileIdle };
  };

  function postJson(url, body, apiKey) {
    var headers = { 'Content-Type': 'application/json' };
    if (apiKey) {
      headers.Authorization = 'Bearer ' + apiKey;
    }
    var options = { method: 'POST', headers: headers, body: JSON.stringify(body) };
    if (typeof window !== 'undefined') {
      // A page cannot read the answer of another origin's API without CORS, which the internal
      // API does not do: send it as a simple request and do not look at the answer.
      options = { method: 'POST', mode: 'no-cors', body: JSON.stringify(body) };
    }
    return fetch(url.replace(/\/+$/, '') + '/api/publish', options).then(function (response) {
      if (response.type !== 'opaque' && !response.ok) {
        throw new Error('POST ' + url + '/api/publish: ' + response.status);
      }
    });
  }

  function run(SockJS, given) {
    var job = {};
    Object.keys(DEFAULTS).forEach(function (key) {
      job[key] = given[key] === undefined || given[key] === null ? DEFAULTS[key] : given[key];
    });
    job.tag = job.tag || randomTag();
    job.channel = job.channel || 'deploy-check-' + job.tag;
    var started = Date.now();
    var timings = {};
    var clients = [];
    var expected = [];
    var result = { ok: false, error: null, url: job.url, channel: job.channel, tag: job.tag,
                   expected: expected, clients: [], timings: timings };

    function all(what, predicate) {
      return Promise.all(clients.map(function (client) {
        return client.waitFor(what, predicate, job.timeout_ms);
      }));
    }

    job.transports.forEach(function (transport) {
      var count = typeof job.clients === 'number' ? job.clients : job.clients[transport] || 0;
      for (var i = 0; i < count; i++) {
        clients.push(new Client(SockJS, job, transport, i));
      }
    });
    clients.forEach(function (client) {
      for (var n = 0; n < job.messages; n++) {
        expected.push(keyOf({ from: client.name, n: n }));
      }
    });
    job.api_urls.forEach(function (url, index) {
      expected.push(keyOf({ from: 'api' + index, n: 0 }));
    });

    return all('subscribed', function (c) { return c.subscribed; }).then(function () {
      timings.subscribed_ms = Date.now() - started;
      if (!job.idle_ms) {
        return null;
      }
      clients.forEach(function (client) { client.idle = true; });
      return sleep(job.idle_ms).then(function () {
        clients.forEach(function (client) { client.idle = false; });
        var closed = clients.filter(function (c) { return c.closeEvent; });
        if (closed.length) {
          throw new Error('closed while idle for ' + job.idle_ms + ' ms: ' + closed.map(
            function (c) { return c.name + ' ' + JSON.stringify(c.closeEvent); }).join(', '));
        }
      });
    }).then(function () {
      timings.published_at_ms = Date.now() - started;
      clients.forEach(function (client) {
        for (var n = 0; n < job.messages; n++) {
          client.send({ action: 'publish',
                        payload: { channel: job.channel, message: { from: client.name, n: n } } });
        }
      });
      return Promise.all(job.api_urls.map(function (url, index) {
        return postJson(url, { channel: job.channel, message: { from: 'api' + index, n: 0 } },
                        job.api_key);
      }));
    }).then(function () {
      return all('every message', function (c) {
        return c.received.length >= expected.length;
      });
    }).then(function () {
      timings.delivered_ms = Date.now() - started;
      return sleep(job.settle_ms);
    }).then(function () {
      var wanted = expected.slice().sort();
      var wrong = clients.filter(function (c) {
        return c.received.slice().sort().join('\n') !== wanted.join('\n') ||
               c.usedTransport !== c.transport;
      });
      if (wrong.length) {
        throw new Error('not exactly once (or not the forced transport): ' + wrong.map(
          function (c) { return c.name; }).join(', '));
      }
      result.ok = true;
    }).catch(function (error) {
      result.error = String(error && error.message || error);
    }).then(function () {
      clients.forEach(function (client) {
        if (!client.closeEvent) {
          try { client.sock.close(1000, 'Done'); } catch (ignored) { /* closing already */ }
        }
      });
      // Give the closes a moment to reach the servers (their access logs show them).
      return Promise.race([
        all('close', function (c) { return c.closeEvent !== null; }).catch(function () {}),
        sleep(2000)]);
    }).then(function () {
      timings.total_ms = Date.now() - started;
      result.clients = clients.map(function (client) { return client.describe(); });
      return result;
    });
  }

  if (typeof module !== 'undefined' && module.exports && typeof window === 'undefined') {
    module.exports = { run: run, DEFAULTS: DEFAULTS };
    if (require.main === module) {
      var SockJS = require('sockjs-client');
      var finish = function (job) {
        var guard = setTimeout(function () {
          process.stdout.write(JSON.stringify({ ok: false, error: 'overall time-out' }) + '\n',
                               function () { process.exit(2); });
        }, (job.timeout_ms || DEFAULTS.timeout_ms) * 4 + (job.idle_ms || 0) + 5000);
        run(SockJS, job).then(function (result) {
          clearTimeout(guard);
          // sockjs-client may keep a timer or a socket for a moment: exit once printed.
          process.stdout.write(JSON.stringify(result) + '\n',
                               function () { process.exit(result.ok ? 0 : 1); });
        });
      };
      var argument = process.argv[2];
      if (argument && argument.charAt(0) !== '{') {
        finish({ url: argument });
      } else if (argument) {
        finish(JSON.parse(argument));
      } else {
        var input = '';
        process.stdin.setEncoding('utf8');
        process.stdin.on('data', function (chunk) { input += chunk; });
        process.stdin.on('end', function () { finish(JSON.parse(input || '{}')); });
      }
    }
  } else {
    root.deployCheck = { run: function (job) { return run(root.SockJS, job); } };
  }
}(typeof window !== 'undefined' ? window : this));
