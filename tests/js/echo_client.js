/*
 * The real-client checks of realtimemagic, with sockjs-client 1.6.1, for Node and for a browser.
 *
 * In Node (tests/test_sockjs_client_node.py, tests/test_gunicorn.py):
 *
 *     echo '{"base": "http://127.0.0.1:8081", "transport": "xhr-polling",
 *            "messages": ["a", "b"]}' | node echo_client.js
 *
 * reads one JSON job on standard input and prints one JSON result line on standard output.
 *
 * In a browser (tests/test_sockjs_client_browser.py) the page loads sockjs.min.js and then this
 * file, and calls ``window.sockjsChecks.run(job)``, a Promise of the same result.
 *
 * A job: ``base`` (the server, without a path), ``transport`` (forced, the only one allowed),
 * ``messages`` (echoed in order through <base>/echo), ``timeout_ms`` (for each step).
 * The result: ``echo`` (transport that connected, the messages received, the close event of our
 * own close) and ``close`` (what <base>/close said when it closed the session), and ``error``
 * when a step failed or timed out.
 */
(function (root) {
  'use strict';

  function describeClose(event) {
    return { code: event.code, reason: event.reason, wasClean: event.wasClean };
  }

  // One SockJS connection, its events kept in order; `waitFor` resolves when a predicate on
  // the recorded state holds, or rejects after `timeoutMs`.
  function Connection(SockJS, url, transport, timeoutMs) {
    var self = this;
    this.opened = false;
    this.transport = null;
    this.messages = [];
    this.closeEvent = null;
    this.waiters = [];
    this.sock = new SockJS(url, null, { transports: [transport], timeout: timeoutMs });
    this.sock.onopen = function () {
      self.opened = true;
      self.transport = self.sock.transport;
      self.poke();
    };
    this.sock.onmessage = function (event) {
      self.messages.push(event.data);
      self.poke();
    };
    this.sock.onclose = function (event) {
      self.closeEvent = describeClose(event);
      self.poke();
    };
  }

  Connection.prototype.poke = function () {
    var waiting = this.waiters;
    this.waiters = [];
    for (var i = 0; i < waiting.length; i++) {
      if (!waiting[i]()) {
        this.waiters.push(waiting[i]);
      }
    }
  };

  Connection.prototype.waitFor = function (what, predicate, timeoutMs) {
    var self = this;
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () {
        reject(new Error('timed out after ' + timeoutMs + ' ms waiting for ' + what +
                         ' (received ' + self.messages.length + ' messages, close: ' +
                         JSON.stringify(self.closeEvent) + ')'));
      }, timeoutMs);
      function check() {
        var outcome = predicate(self);
        if (outcome === false) {
          return false;
        }
        clearTimeout(timer);
        if (outcome instanceof Error) {
          reject(outcome);
        } else {
          resolve(outcome);
        }
        return true;
      }
      if (!check()) {
        self.waiters.push(check);
      }
    });
  };

  function run(SockJS, job) {
    var timeoutMs = job.timeout_ms || 10000;
    var result = { echo: null, close: null, error: null };
    var echo = new Connection(SockJS, job.base + '/echo', job.transport, timeoutMs);
    result.echo = { transport: null, received: echo.messages, close: null };
    var closing = null;

    return echo.waitFor('open of /echo', function (c) {
      if (c.opened) { return true; }
      if (c.closeEvent) {
        return new Error('/echo closed before opening: ' + JSON.stringify(c.closeEvent));
      }
      return false;
    }, timeoutMs).then(function () {
      result.echo.transport = echo.transport;
      job.messages.forEach(function (message) { echo.sock.send(message); });
      return echo.waitFor('the echoes', function (c) {
        if (c.messages.length >= job.messages.length) { return true; }
        if (c.closeEvent) {
          return new Error('/echo closed before echoing: ' + JSON.stringify(c.closeEvent));
        }
        return false;
      }, timeoutMs);
    }).then(function () {
      echo.sock.close(1000, 'Done');
      return echo.waitFor('close of /echo', function (c) {
        return c.closeEvent !== null;
      }, timeoutMs);
    }).then(function () {
      result.echo.close = echo.closeEvent;
      closing = new Connection(SockJS, job.base + '/close', job.transport, timeoutMs);
      return closing.waitFor('close of /close', function (c) {
        return c.closeEvent !== null;
      }, timeoutMs);
    }).then(function () {
      result.close = { transport: closing.transport, opened: closing.opened,
                       received: closing.messages, event: closing.closeEvent };
      return result;
    }).catch(function (error) {
      result.error = String(error && error.message || error);
      if (closing) {
        result.close = { transport: closing.transport, opened: closing.opened,
                         received: closing.messages, event: closing.closeEvent };
      }
      return result;
    }).then(function (finished) {
      [echo, closing].forEach(function (c) {
        if (c && c.closeEvent === null) {
          try { c.sock.close(); } catch (ignored) { /* already closing */ }
        }
      });
      return finished;
    });
  }

  if (typeof module !== 'undefined' && module.exports && typeof window === 'undefined') {
    module.exports = { run: run };
    if (require.main === module) {
      var SockJS = require('sockjs-client');
      var input = '';
      process.stdin.setEncoding('utf8');
      process.stdin.on('data', function (chunk) { input += chunk; });
      process.stdin.on('end', function () {
        var job = JSON.parse(input);
        var guard = setTimeout(function () {
          process.stdout.write(JSON.stringify({ error: 'echo_client.js overall time-out' }) + '\n',
                               function () { process.exit(2); });
        }, (job.timeout_ms || 10000) * 4 + 1000);
        run(SockJS, job).then(function (result) {
          clearTimeout(guard);
          // sockjs-client may hold a timer or a socket for a moment: exit once printed.
          process.stdout.write(JSON.stringify(result) + '\n', function () { process.exit(0); });
        });
      });
    }
  } else {
    root.sockjsChecks = { run: function (job) { return run(root.SockJS, job); } };
  }
}(typeof window !== 'undefined' ? window : this));
