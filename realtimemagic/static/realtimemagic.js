/*!
 * realtimemagic JavaScript client (docs/client.md).
 *
 * One file, no dependencies, three ways to load it:
 *   - a plain <script src="/pubsub/realtimemagic.js">: the global `realtimeMagic`;
 *   - require() (Node, bundlers): `module.exports` is the same object, no global is set;
 *   - an ES module: `import realtimeMagic, { Client } from 'realtimemagic-client'`
 *     (client/index.mjs), or `import '/pubsub/realtimemagic.js'` in a browser, which then
 *     sets the global as a plain script does.
 *
 * Transport: sockjs-client when the page has loaded it (`window.SockJS`), else the server's
 * plain WebSocket endpoint `{prefix}/websocket`; `options.transport` chooses explicitly.
 *
 * Ordering rule, on every (re)connection:
 *   1. the client subscribes to every channel it is subscribed to, in the order they were
 *      first subscribed (each one once);
 *   2. `onopen` runs; what it calls goes out at once;
 *   3. the publish() and send() calls made while not connected go out, in the order they
 *      were made.
 * So a publish made right after `new` reaches a subscription made in `onopen`.
 *
 * Recovery (docs/history.md): the client remembers, per channel, the position (`offset`,
 * `epoch`) of the last delivery it got (or, before any, the one of its `subscribed` reply), and
 * subscribes again after a reconnection with `"since": {offset, epoch}`: the server sends what
 * was missed, or answers `"recovered": false` (then `onrecoveryfailed(channel, reply)`).
 * Every subscribe carries an `id` (`"rtm.<n>"`) so that its reply comes back; those replies are
 * the client's own and do not reach `onreply`. A subscribe the server refuses (an error reply)
 * removes the channel from `channels()`, then goes to `onerror`.
 */
(function (root, factory) {
  'use strict';
  var api = factory(root);
  if (typeof module === 'object' && module && typeof module.exports === 'object') {
    module.exports = api;
  } else if (root) {
    root.realtimeMagic = api;
  }
}(typeof globalThis !== 'undefined' ? globalThis
  : typeof self !== 'undefined' ? self
    : typeof window !== 'undefined' ? window : this, function (root) {
  'use strict';

  var VERSION = '1.0.0';
  var DEFAULT_MIN_DELAY = 1000;   // ms, the first wait before reconnecting (at least)
  var DEFAULT_MAX_DELAY = 30000;  // ms, the longest wait
  var REPLIES = { subscribed: true, unsubscribed: true, published: true, presence: true };
  var ID_PREFIX = 'rtm.';         // the ids of the client's own requests

  function number(value, fallback) {
    return typeof value === 'number' && value >= 0 && isFinite(value) ? value : fallback;
  }

  function isObject(value) {
    return value !== null && typeof value === 'object' && !Array.isArray(value);
  }

  /** A channel position {offset, epoch} out of a payload, or null when it has none. */
  function positionOf(payload) {
    var offset = payload.offset;
    var epoch = payload.epoch;
    if (typeof offset !== 'number' || !isFinite(offset) || epoch === undefined ||
        epoch === null) {
      return null;
    }
    return { offset: offset, epoch: epoch };
  }

  /** An Error for a request that failed: `code`, `reason`, `channel` as the server's errors. */
  function requestError(code, reason, channel) {
    var error = new Error('realtimeMagic: ' + code + (reason ? ': ' + reason : ''));
    error.code = code;
    error.reason = reason;
    error.channel = channel;
    return error;
  }

  /** Report an exception of the application's callback without breaking the client. */
  function rethrowLater(error) {
    setTimeout(function () { throw error; }, 0);
  }

  /**
   * How long to wait before reconnection attempt number `attempt` (0 for the first one after
   * a connection was lost), in ms: a random point of
   * [min(maxDelay, minDelay * 2^attempt), min(maxDelay, minDelay * 2^(attempt + 1))]
   * (the lower end is never above maxDelay / 2 once capped), so never below minDelay nor above
   * maxDelay, and clients that lost the same server do not come back all at once.
   */
  function backoff(attempt, minDelay, maxDelay, random) {
    minDelay = number(minDelay, DEFAULT_MIN_DELAY);
    maxDelay = Math.max(minDelay, number(maxDelay, DEFAULT_MAX_DELAY));
    var ceiling = Math.min(maxDelay, minDelay * Math.pow(2, attempt + 1));
    var floor = Math.max(minDelay, Math.min(minDelay * Math.pow(2, attempt), ceiling / 2));
    var draw = (random || Math.random)();
    return floor + Math.min(Math.max(draw, 0), 1) * (ceiling - floor);
  }

  function parseUrl(url, base) {
    var URLClass = root.URL;
    if (typeof URLClass !== 'function') {
      throw new Error('realtimeMagic: this environment has no URL class');
    }
    return base ? new URLClass(url, base) : new URLClass(url);
  }

  function pageLocation() {
    return root.location && root.location.href ? String(root.location.href) : undefined;
  }

  /**
   * The plain WebSocket address of the endpoint `url`: an http(s) URL is the SockJS endpoint
   * (`http://host:9000/pubsub`), whose WebSocket is `ws://host:9000/pubsub/websocket` (https
   * gives wss; the query string is kept, the fragment dropped). A ws(s) URL is used as given.
   * A relative URL is taken relative to `base` (the page's address in a browser).
   */
  function websocketUrl(url, base) {
    var parsed = parseUrl(String(url), base === undefined ? pageLocation() : base);
    var scheme = parsed.protocol;
    if (scheme === 'ws:' || scheme === 'wss:') {
      return scheme + '//' + parsed.host + parsed.pathname + parsed.search;
    }
    if (scheme !== 'http:' && scheme !== 'https:') {
      throw new Error('realtimeMagic: not an http(s) or ws(s) URL: ' + url);
    }
    var path = parsed.pathname.replace(/\/+$/, '') + '/websocket';
    return (scheme === 'https:' ? 'wss:' : 'ws:') + '//' + parsed.host + path + parsed.search;
  }

  /** The SockJS address of the endpoint `url` (a ws(s) address is turned back into it). */
  function sockjsUrl(url, base) {
    url = String(url);
    if (!/^wss?:/i.test(url)) {
      return url;  // http(s) or relative: sockjs-client takes it as it is
    }
    var parsed = parseUrl(url, base === undefined ? pageLocation() : base);
    var path = parsed.pathname.replace(/\/websocket\/?$/, '').replace(/\/+$/, '');
    return (parsed.protocol === 'wss:' ? 'https:' : 'http:') + '//' + parsed.host + path +
      parsed.search;
  }

  function copy(object) {
    var result = {};
    if (object) {
      for (var key in object) {
        if (Object.prototype.hasOwnProperty.call(object, key)) { result[key] = object[key]; }
      }
    }
    return result;
  }

  /**
   * `new Client(url, options)`: a pub/sub connection to the realtimemagic endpoint `url`
   * (`http://host:9000/pubsub`) that stays connected until close().
   *
   * options: transport ('auto' | 'sockjs' | 'websocket'), transports (sockjs-client's
   * `transports`), sockjsOptions (other sockjs-client options), minDelay, maxDelay (ms),
   * reconnect (false: never), SockJS, WebSocket (the classes to use instead of the globals),
   * random (instead of Math.random, for the jitter), recover (false: no positions, no `since`
   * and no `id` on subscribes: the wire messages of a client without recovery).
   */
  function Client(url, options) {
    if (!(this instanceof Client)) {
      return new Client(url, options);
    }
    options = options || {};
    this.url = url;
    this.options = options;
    this.minDelay = number(options.minDelay, DEFAULT_MIN_DELAY);
    this.maxDelay = Math.max(this.minDelay, number(options.maxDelay, DEFAULT_MAX_DELAY));
    this.reconnect = options.reconnect !== false;
    this.recover = options.recover !== false;
    /** onopen(), each time a connection opens. */
    this.onopen = null;
    /** onmessage(message, channel, meta): every delivery (meta {offset, epoch} on a channel
     * with history); the application's own messages to this client (conn.send) come with
     * channel undefined. */
    this.onmessage = null;
    /** onclose(event), each time a connection closes or an attempt fails. */
    this.onclose = null;
    /** onerror(error): the server's error replies {code, reason, channel, id}; and
     * {code: 'not_json', reason, data} for text from the server that is not JSON. */
    this.onerror = null;
    /** onreply(reply): replies {action, channel, id} to requests that had an id (send()). */
    this.onreply = null;
    /** onrecoveryfailed(channel, reply): a re-subscription could not get what was missed (the
     * server answered "recovered": false, `reply` is its payload): reload the channel's state. */
    this.onrecoveryfailed = null;
    /** onjoin(client, channel), onleave(client, channel): presence events (join_leave). */
    this.onjoin = null;
    this.onleave = null;
    /** {channel: true} for the channels whose last recovery failed (until one succeeds). */
    this.recoveryFailed = {};
    /** 'sockjs' or 'websocket': the transport of the current (or last) connection. */
    this.transport = null;
    /** The SockJS or WebSocket object of the current connection (for diagnostics). */
    this.socket = null;
    /** True while a connection is open. */
    this.connected = false;
    /** Reconnection attempts since a connection last opened. */
    this.attempts = 0;
    // [{channel, callbacks, position: {offset, epoch} | null, deliveries: count with one}],
    // in the order first subscribed
    this._subscriptions = [];
    this._queue = [];          // [{text, id}]: publish(), send(), presence() while not connected
    this._pending = {};        // id -> {kind, entry | channel, since, sent, resolve, reject}
    this._lastId = 0;
    this._timer = null;
    this._closed = false;
    this._connect();
  }

  Client.prototype._chooseTransport = function () {
    var wanted = this.options.transport || 'auto';
    var SockJS = this.options.SockJS || root.SockJS;
    if (wanted === 'websocket') {
      return 'websocket';
    }
    if (wanted === 'sockjs') {
      if (typeof SockJS !== 'function') {
        throw new Error('realtimeMagic: transport "sockjs" needs sockjs-client: load it first');
      }
      return 'sockjs';
    }
    if (wanted !== 'auto') {
      throw new Error('realtimeMagic: unknown transport ' + JSON.stringify(wanted));
    }
    return typeof SockJS === 'function' ? 'sockjs' : 'websocket';
  };

  /** Open a connection (throws when the transport cannot even be created). */
  Client.prototype._connect = function () {
    var self = this;
    var kind = this._chooseTransport();
    var socket;
    if (kind === 'sockjs') {
      var SockJS = this.options.SockJS || root.SockJS;
      var sockjsOptions = copy(this.options.sockjsOptions);
      if (this.options.transports) {
        sockjsOptions.transports = this.options.transports;
      }
      socket = new SockJS(sockjsUrl(this.url), null, sockjsOptions);
    } else {
      var WebSocketClass = this.options.WebSocket || root.WebSocket;
      if (typeof WebSocketClass !== 'function') {
        throw new Error('realtimeMagic: no WebSocket here; load sockjs-client or pass ' +
                        'options.WebSocket');
      }
      socket = new WebSocketClass(websocketUrl(this.url));
    }
    var opened = false;
    this.transport = kind;
    this.socket = socket;
    socket.onopen = function () {
      if (self.socket === socket && !self._closed) {
        opened = true;
        self._opened();
      }
    };
    socket.onmessage = function (event) {
      if (self.socket === socket && !self._closed) {
        self._received(event.data);
      }
    };
    socket.onclose = function (event) {
      if (self.socket === socket) {
        self._lost(event, opened);
      }
    };
    socket.onerror = function () {};  // a close event follows
  };

  Client.prototype._opened = function () {
    this.connected = true;
    this.attempts = 0;
    var entries = this._subscriptions.slice();
    for (var i = 0; i < entries.length; i++) {
      this._sendSubscribe(entries[i]);
    }
    this._call(this.onopen, []);
    this._flush();
  };

  Client.prototype._flush = function () {
    while (this.connected && this._queue.length) {
      var item = this._queue.shift();
      this._write(item.text);
      if (item.id !== undefined && this._pending[item.id]) {
        this._pending[item.id].sent = true;
      }
    }
  };

  Client.prototype._newId = function () {
    this._lastId += 1;
    return ID_PREFIX + this._lastId;
  };

  /** Subscribe `entry` on the open connection: with an id (to get the position in the reply)
   * and, when the channel has a position, `since` (to get what was missed). */
  Client.prototype._sendSubscribe = function (entry) {
    var payload = { channel: entry.channel };
    var request = { action: 'subscribe', payload: payload };
    if (this.recover) {
      var since = entry.position ? { offset: entry.position.offset,
                                     epoch: entry.position.epoch } : null;
      if (since) {
        payload.since = since;
      }
      request.id = this._newId();
      this._pending[request.id] = { kind: 'subscribe', entry: entry, since: since, sent: true,
                                    mark: entry.deliveries };
    }
    this._write(JSON.stringify(request));
  };

  /** The requests sent on a connection that is gone get no answer: forget the subscribes (the
   * next connection subscribes again), reject the presence requests. Queued ones stay. */
  Client.prototype._abandonSent = function (code, reason, all) {
    var rejected = [];
    for (var id in this._pending) {
      if (Object.prototype.hasOwnProperty.call(this._pending, id)) {
        var pending = this._pending[id];
        if (pending.sent || all) {
          delete this._pending[id];
          if (pending.reject) { rejected.push(pending); }
        }
      }
    }
    for (var i = 0; i < rejected.length; i++) {
      rejected[i].reject(requestError(code, reason, rejected[i].channel));
    }
  };

  Client.prototype._lost = function (event, wasOpen) {
    this.connected = false;
    this.socket = null;
    this._abandonSent('disconnected', 'the connection was lost before the reply', this._closed);
    var reconnecting = this.reconnect && !this._closed;
    var delay = reconnecting ? backoff(this.attempts, this.minDelay, this.maxDelay,
                                       this.options.random) : null;
    event = event || {};
    this._call(this.onclose, [{
      code: event.code,
      reason: event.reason,
      wasClean: !!event.wasClean,
      wasOpen: !!wasOpen,
      reconnecting: reconnecting,
      delay: delay,
      transport: this.transport,
      event: event
    }]);
    if (reconnecting && !this._closed && this._timer === null) {
      var self = this;
      this.attempts += 1;
      this._timer = setTimeout(function () { self._reconnectNow(); }, delay);
    }
  };

  Client.prototype._reconnectNow = function () {
    this._timer = null;
    if (this._closed || this.socket) {
      return;
    }
    try {
      this._connect();
    } catch (error) {
      this._lost({ code: 0, reason: String(error && error.message || error) }, false);
    }
  };

  Client.prototype._received = function (data) {
    var value = data;
    if (typeof data === 'string') {
      try {
        value = JSON.parse(data);
      } catch (error) {
        // The server sends only JSON: text that is not is a fault on the way (a proxy, another
        // server), never a message for the application.
        this._reportError({ code: 'not_json', reason: 'the server sent a message that is not ' +
                            'JSON', channel: undefined, id: undefined, data: data });
        return;
      }
    }
    var payload = isObject(value) ? value.payload : undefined;
    if (isObject(payload) && typeof value.action === 'string') {
      var pending = null;
      if (typeof value.id === 'string' && value.id.indexOf(ID_PREFIX) === 0 &&
          Object.prototype.hasOwnProperty.call(this._pending, value.id)) {
        pending = this._pending[value.id];
        delete this._pending[value.id];
      }
      if (value.action === 'message') {
        this._delivered(payload);
        return;
      }
      if (value.action === 'error') {
        if (pending && pending.kind === 'subscribe') {
          this._refused(pending.entry);
        }
        if (pending && pending.reject) {
          pending.reject(requestError(payload.code, payload.reason,
                                      payload.channel === undefined ? pending.channel
                                        : payload.channel));
          return;
        }
        this._reportError({ code: payload.code, reason: payload.reason,
                            channel: payload.channel, id: pending ? undefined : value.id });
        return;
      }
      if (value.action === 'join' || value.action === 'leave') {
        this._call(value.action === 'join' ? this.onjoin : this.onleave,
                   [payload.client, payload.channel]);
        return;
      }
      if (pending && pending.kind === 'subscribe' && value.action === 'subscribed') {
        this._subscribed(pending, payload);
        return;
      }
      if (pending && pending.kind === 'presence' && value.action === 'presence') {
        pending.resolve(Array.isArray(payload.clients) ? payload.clients : []);
        return;
      }
      if (REPLIES[value.action] && !pending) {
        this._call(this.onreply, [{ action: value.action, channel: payload.channel,
                                    id: value.id }]);
        return;
      }
      if (pending) {
        return;  // an answer of an unexpected kind to one of the client's own requests
      }
    }
    this._call(this.onmessage, [value, undefined]);
  };

  /** An error for onerror, or the console when the application has no onerror. */
  Client.prototype._reportError = function (error) {
    if (typeof this.onerror === 'function') {
      this._call(this.onerror, [error]);
    } else if (root.console && root.console.warn) {
      root.console.warn('realtimeMagic: ' + error.reason, error);
    }
  };

  /** A delivery: track the channel's position, drop a duplicate, call the callbacks. */
  Client.prototype._delivered = function (payload) {
    var entry = this._find(payload.channel);
    var meta = positionOf(payload);
    if (entry && meta && this.recover) {
      var last = entry.position;
      if (last && last.epoch === meta.epoch && meta.offset <= last.offset) {
        return;  // seen already (the server promises none: defensive)
      }
      entry.position = { offset: meta.offset, epoch: meta.epoch };
      entry.deliveries += 1;
    }
    var args = meta ? [payload.message, payload.channel, meta] : [payload.message,
                                                                   payload.channel];
    var callbacks = entry ? entry.callbacks.slice() : [];
    for (var i = 0; i < callbacks.length; i++) {
      this._call(callbacks[i], args);
    }
    this._call(this.onmessage, args);
  };

  /** The server refused a subscribe of `entry` (forbidden, limit...): the channel leaves the
   * subscriptions, so that it is not subscribed again on the next connection. */
  Client.prototype._refused = function (entry) {
    var index = this._subscriptions.indexOf(entry);
    if (index !== -1) {
      this._subscriptions.splice(index, 1);
      delete this.recoveryFailed[entry.channel];
    }
  };

  /** The reply to one of the client's subscribes: the channel's position, and with `since`
   * whether what was missed is coming. */
  Client.prototype._subscribed = function (pending, payload) {
    var entry = pending.entry;
    if (this._find(entry.channel) !== entry) {
      return;  // unsubscribed since (or subscribed anew: a newer request of its own)
    }
    var latest = positionOf(payload);
    if (!pending.since) {
      // No position yet (no message seen): start from the channel's latest offset, so that
      // what is published while the client is away can be recovered. A delivery that came
      // before the reply has set a position already, and it is the better one.
      if (!entry.position && latest) {
        entry.position = latest;
      }
      return;
    }
    if (payload.recovered === true) {
      delete this.recoveryFailed[entry.channel];
      return;  // the missed messages follow, and move the position on
    }
    // Not recovered ("recovered": false, or a server that ignored `since`): nothing old comes.
    // Carry on from the channel's latest position (or none when it has no history), unless a
    // live delivery came after the request with a later offset of that epoch.
    var current = entry.position;
    var newer = entry.deliveries > pending.mark && current && latest &&
      current.epoch === latest.epoch && current.offset > latest.offset;
    if (!newer) {
      entry.position = latest;
    }
    this.recoveryFailed[entry.channel] = true;
    this._call(this.onrecoveryfailed, [entry.channel, payload]);
  };

  Client.prototype._call = function (callback, args) {
    if (typeof callback !== 'function') {
      return;
    }
    try {
      callback.apply(this, args);
    } catch (error) {
      rethrowLater(error);
    }
  };

  Client.prototype._find = function (channel) {
    for (var i = 0; i < this._subscriptions.length; i++) {
      if (this._subscriptions[i].channel === channel) { return this._subscriptions[i]; }
    }
    return null;
  };

  Client.prototype._request = function (action, channel, message, hasMessage) {
    var payload = { channel: channel };
    if (hasMessage) {
      payload.message = message === undefined ? null : message;
    }
    return JSON.stringify({ action: action, payload: payload });
  };

  Client.prototype._write = function (text) {
    this.socket.send(text);
  };

  /** Send now when connected, else queue (dropped after close()). Returns whether it was
   * sent now. */
  Client.prototype._enqueue = function (text, id) {
    if (this._closed) {
      return false;
    }
    if (this.connected) {
      this._write(text);
      return true;
    }
    this._queue.push({ text: text, id: id });
    return false;
  };

  function checkChannel(channel) {
    if (typeof channel !== 'string' || channel === '') {
      throw new TypeError('realtimeMagic: a channel is a non-empty string');
    }
  }

  /**
   * Subscribe to `channel` (once, however many times it is called); `callback(message,
   * channel)` if given gets that channel's deliveries. The subscription lasts until
   * unsubscribe(), across reconnections.
   */
  Client.prototype.subscribe = function (channel, callback) {
    checkChannel(channel);
    var entry = this._find(channel);
    if (!entry) {
      entry = { channel: channel, callbacks: [], position: null, deliveries: 0 };
      this._subscriptions.push(entry);
      if (this.connected) {
        this._sendSubscribe(entry);
      }
    }
    if (typeof callback === 'function') {
      entry.callbacks.push(callback);
    }
    return this;
  };

  /** Unsubscribe from `channel` and forget its callbacks. */
  Client.prototype.unsubscribe = function (channel) {
    checkChannel(channel);
    var entry = this._find(channel);
    if (entry) {
      this._subscriptions.splice(this._subscriptions.indexOf(entry), 1);
      delete this.recoveryFailed[channel];
      if (this.connected) {
        this._write(this._request('unsubscribe', channel));
      }
    }
    return this;
  };

  /** The channels subscribed to, in the order first subscribed. */
  Client.prototype.channels = function () {
    var names = [];
    for (var i = 0; i < this._subscriptions.length; i++) {
      names.push(this._subscriptions[i].channel);
    }
    return names;
  };

  /** Publish `message` (any JSON value) to `channel`. */
  Client.prototype.publish = function (channel, message) {
    checkChannel(channel);
    this._enqueue(this._request('publish', channel, message, true));
    return this;
  };

  /** Send `message` (any JSON value, JSON-encoded here) to the application's receivers. */
  Client.prototype.send = function (message) {
    var text = JSON.stringify(message === undefined ? null : message);
    this._enqueue(text);
    return this;
  };

  /** The position {offset, epoch} of the last message of `channel` (null: none known). */
  Client.prototype.position = function (channel) {
    var entry = this._find(channel);
    return entry && entry.position ? { offset: entry.position.offset,
                                       epoch: entry.position.epoch } : null;
  };

  /**
   * Who is subscribed to `channel` (presence on, docs/history.md): a Promise of the list of
   * clients ({session: id}, or what the application set). Queued while not connected; rejected
   * with an Error {code, reason, channel} on an error reply, a lost connection or close().
   */
  Client.prototype.presence = function (channel) {
    checkChannel(channel);
    var PromiseClass = root.Promise;
    if (typeof PromiseClass !== 'function') {
      throw new Error('realtimeMagic: presence() needs Promise');
    }
    var self = this;
    return new PromiseClass(function (resolve, reject) {
      if (self._closed) {
        reject(requestError('closed', 'the client is closed', channel));
        return;
      }
      var id = self._newId();
      var pending = { kind: 'presence', channel: channel, sent: false, resolve: resolve,
                      reject: reject };
      self._pending[id] = pending;
      var text = JSON.stringify({ action: 'presence', payload: { channel: channel }, id: id });
      pending.sent = self._enqueue(text, id);
    });
  };

  /** Close the connection for good: no reconnection, queued calls dropped. */
  Client.prototype.close = function () {
    this._closed = true;
    this._queue = [];
    this._abandonSent('closed', 'the client is closed', true);
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    this.connected = false;
    var socket = this.socket;
    if (socket) {
      try {
        socket.close();
      } catch (error) {
        this._lost({ code: 0, reason: String(error && error.message || error) }, false);
      }
    }
  };

  return {
    Client: Client,
    backoff: backoff,
    websocketUrl: websocketUrl,
    sockjsUrl: sockjsUrl,
    version: VERSION
  };
}));
