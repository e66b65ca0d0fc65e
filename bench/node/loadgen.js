// Load generator for bench/run.py: N SockJS clients (over WebSocket, or xhr-streaming for the
// polling variant) against one broadcast server.  A few of the clients send timestamped messages
// at a controlled total rate; the server sends every message to every client; every receiver
// measures the latency of every delivery.
//
//   node loadgen.js '<json config>'      (one JSON result on stdout; progress on stderr)
//
// Modes:
//   ramp  a warm-up step, a step at the fixed load, then the rate grows by `factor` until a step
//         fails (p95 over the threshold, or a delivery missing after the drain time), then
//         bisects between the last pass and the first failure.  Every step is bounded in time;
//         a step whose oldest undelivered message is older than abort_age_ms is stopped early
//         (it has failed) so that no huge backlog is left.  A failure is tried again once
//         (confirm_failures), and again after a pause while other processes kept the server or
//         the load generator from their cores (noisy_wait).  Each step reports the latency
//         percentiles, what was delivered and lost, the server's CPU (/proc/PID/stat) and the
//         load generator's own CPU and event-loop utilization.
//   idle  open `levels` connections one level after another; after each level print
//         {"ready": level} on stdout and wait for a line on stdin (the caller reads the
//         server's memory), then go on; close everything at the end.
//   storm a reconnect storm: open `storm_sessions` SockJS WebSocket sessions all at once (as
//         every client does after a server restart) and report the time from the first
//         connect to the last `o` frame, the spread of the sessions' open times, how many
//         failed (refused, closed, or no `o` within storm_timeout_ms), and the server's CPU.
//
// Every step of a ramp also counts the frames that carried its messages (SockJS `a` frames:
// WebSocket messages, or xhr-streaming lines), so frames per delivery (below 1.0: the server
// batched several messages into one frame) is reported with the deliveries.
//
// The storm and the idle mode need a file descriptor per session: run.py raises the load
// generator's and the server's RLIMIT_NOFILE (soft limit up to the hard one) before it starts
// them.
//
// Rates are given in deliveries per second (messages sent per second x N).  The whole run stops
// by itself after deadline_ms.
'use strict';
const http = require('http');
const readline = require('readline');
const fs = require('fs');
const { performance } = require('perf_hooks');
const WebSocket = require('ws');

const cfg = Object.assign({
  mode: 'ramp',
  transport: 'websocket',     // or 'xhr_streaming'
  url: 'http://127.0.0.1:9000/pubsub',
  clients: 100,
  senders: 5,
  fixed_rate: 10000,          // deliveries/s of the fixed-load step (and the ladder's start)
  start_rate: 0,              // first doubling step (deliveries/s); 0: twice the fixed load
  warmup_ms: 2000,
  step_ms: 3000,
  drain_ms: 2000,
  max_doublings: 10,
  factor: 2,                  // the ladder's ratio between steps
  bisections: 3,
  max_halvings: 4,
  threshold_ms: 200,
  abort_age_ms: 1000,
  quiet_ms: 1000,             // after a failed step: wait until nothing arrives for this long
  max_quiet_wait_ms: 20000,
  confirm_failures: true,
  server_core: 0,
  loadgen_core: 1,
  // Run-queue wait (share of the step) of the server and of the load generator above which a
  // failure is retried.  The load generator wakes every 2 ms and waits a little at each wake-up
  // even when nothing else runs, so its bound is higher.
  noisy_wait: [0.10, 0.25],
  noisy_retries: 2,
  noisy_pause_ms: 3000,
  ladder: true,               // false: warm-up and the fixed-load step only
  server_pid: 0,
  levels: [1000, 5000],
  connect_concurrency: 100,
  storm_sessions: 5000,
  storm_timeout_ms: 30000,    // a storm session without its `o` frame by then has failed
  deadline_ms: 600000,        // the whole run stops by itself after this long
}, JSON.parse(process.argv[2] || '{}'));

const log = (...args) => process.stderr.write('[loadgen] ' + args.join(' ') + '\n');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const hardStop = setTimeout(() => {
  log('deadline reached, exiting');
  process.stdout.write(JSON.stringify({ error: 'deadline' }) + '\n');
  process.exit(2);
}, cfg.deadline_ms);
hardStop.unref();

const base = new URL(cfg.url);
const basePath = base.pathname.replace(/\/$/, '');
let sessionCounter = 0;

function sessionPath() {
  sessionCounter += 1;
  const server = String(sessionCounter % 1000).padStart(3, '0');
  const session = 'b' + process.pid.toString(36) + 'x' + sessionCounter.toString(36) +
    Math.random().toString(36).slice(2, 8);
  return `${basePath}/${server}/${session}`;
}

// ---------------------------------------------------------------------------------------------
// Clients.  Each calls onMessage(text) for every SockJS message it receives.

// A message is "<step>:<seq>:<send time>", only digits, colons and a dot: it appears verbatim
// in the frame whatever the JSON around it (a SockJS array, or realtimemagic's pub/sub envelope
// inside it), so a scan for "digits:digits:digits.digits" finds every message in a frame
// without decoding JSON.  That keeps the receiving side cheap (about 50 ns a message, 4x less
// than a regular expression and far less than JSON.parse): the load generator must not be what
// limits the rate.
function scanMessages(frame, now) {
  let found = 0;
  let colon = frame.indexOf(':');
  while (colon >= 0) {
    let position = colon - 1;
    let stepId = 0;
    let scale = 1;
    let code;
    while (position >= 0 && (code = frame.charCodeAt(position)) >= 48 && code <= 57) {
      stepId += (code - 48) * scale; scale *= 10; position -= 1;
    }
    let next = colon + 1;
    let seq = 0;
    while ((code = frame.charCodeAt(next)) >= 48 && code <= 57) { seq = seq * 10 + code - 48; next += 1; }
    if (scale === 1 || next === colon + 1 || code !== 58) {  // not "digits:digits:"
      colon = frame.indexOf(':', colon + 1);
      continue;
    }
    next += 1;
    let whole = 0;
    while ((code = frame.charCodeAt(next)) >= 48 && code <= 57) { whole = whole * 10 + code - 48; next += 1; }
    let fraction = 0;
    let divisor = 1;
    if (code === 46) {
      next += 1;
      while ((code = frame.charCodeAt(next)) >= 48 && code <= 57) {
        fraction = fraction * 10 + code - 48; divisor *= 10; next += 1;
      }
    }
    onMessage(stepId, seq, whole + fraction / divisor, now);
    found += 1;
    colon = frame.indexOf(':', next);
  }
  return found;
}

function onFrame(client, frame) {
  const kind = frame.charCodeAt(0);
  if (kind === 97) {  // 'a'
    const now = performance.now();
    lastArrival = now;
    const before = step === null ? 0 : step.received;
    if (!scanMessages(frame, now)) otherMessages += 1;
    if (step !== null && step.received > before) step.frames += 1;
  } else if (kind === 111) {  // 'o'
    client.opened = true;
    if (client.onopen) client.onopen();
  } else if (kind === 99) {  // 'c'
    client.closeFrame = frame;
    client.closed = true;
  } // 'h': heartbeat (and the xhr-streaming prelude)
}

class WebSocketClient {
  constructor() {
    this.opened = false;
    this.closed = false;
    this.closeFrame = null;
  }

  connect(timeoutMs = 30000) {
    return new Promise((resolve, reject) => {
      const url = `ws://${base.host}${sessionPath()}/websocket`;
      const socket = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
      this.socket = socket;
      const timer = setTimeout(() => { socket.terminate(); reject(new Error('open timeout')); },
        timeoutMs);
      this.onopen = () => { clearTimeout(timer); resolve(this); };
      socket.on('message', (data) => onFrame(this, data.toString()));
      socket.on('close', () => { this.closed = true; clearTimeout(timer); reject(new Error('closed')); });
      socket.on('error', (error) => { this.closed = true; clearTimeout(timer); reject(error); });
    });
  }

  send(text) {
    // SockJS over WebSocket: one JSON array of strings per frame.
    this.socket.send(JSON.stringify([text]));
  }

  close() {
    try { this.socket.terminate(); } catch (error) { /* already gone */ }
    this.closed = true;
  }
}

const streamAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

class XhrStreamingClient {
  // sockjs-client's xhr-streaming: one long POST .../xhr_streaming (reopened when the server
  // ends it at its response limit) and POST .../xhr_send for what the client sends, one request
  // at a time, batching what queued up meanwhile (as sockjs-client does).
  constructor() {
    this.opened = false;
    this.closed = false;
    this.closeFrame = null;
    this.path = sessionPath();
    this.queue = [];
    this.sending = false;
    this.sendAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  }

  connect(timeoutMs = 30000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('open timeout')), timeoutMs);
      this.onopen = () => { clearTimeout(timer); resolve(this); };
      this.onfail = (error) => { clearTimeout(timer); reject(error); };
      this.stream();
    });
  }

  stream() {
    if (this.closed) return;
    const request = http.request({
      host: base.hostname, port: base.port, method: 'POST', agent: streamAgent,
      path: `${this.path}/xhr_streaming`, headers: { 'Content-Length': 0 },
    }, (response) => {
      response.setEncoding('utf8');
      let buffer = '';
      response.on('data', (chunk) => {
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf('\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 1);
          if (frame) onFrame(this, frame);
        }
      });
      response.on('end', () => { if (!this.closed && !this.closeFrame) this.stream(); });
    });
    this.request = request;
    request.on('error', (error) => {
      if (!this.closed) { this.closed = true; if (this.onfail) this.onfail(error); }
    });
    request.end();
  }

  send(text) {
    this.queue.push(text);
    if (!this.sending) this.flush();
  }

  flush() {
    const body = JSON.stringify(this.queue);
    this.queue = [];
    this.sending = true;
    const request = http.request({
      host: base.hostname, port: base.port, method: 'POST', agent: this.sendAgent,
      path: `${this.path}/xhr_send`,
      headers: { 'Content-Type': 'text/plain;charset=UTF-8', 'Content-Length': Buffer.byteLength(body) },
    }, (response) => {
      response.resume();
      response.on('end', () => {
        this.sending = false;
        if (this.queue.length) this.flush();
      });
    });
    request.on('error', () => { this.sending = false; this.sendErrors = (this.sendErrors || 0) + 1; });
    request.end(body);
  }

  close() {
    this.closed = true;
    if (this.request) this.request.destroy();
    this.sendAgent.destroy();
  }
}

function newClient() {
  return cfg.transport === 'websocket' ? new WebSocketClient() : new XhrStreamingClient();
}

async function connectMany(count, clients) {
  let failures = 0;
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next += 1;
      const client = newClient();
      try {
        await client.connect();
        clients.push(client);
      } catch (error) {
        failures += 1;
        if (failures <= 3) log('connect failed:', error.message);
      }
    }
  };
  const workers = [];
  for (let i = 0; i < Math.min(cfg.connect_concurrency, count); i++) workers.push(worker());
  await Promise.all(workers);
  return failures;
}

// ---------------------------------------------------------------------------------------------
// Measuring.  Messages are "<step>:<seq>:<send time, ms>"; latency is taken at each receiver.

const BUCKET_MS = 0.05;
const BUCKETS = Math.ceil(20000 / BUCKET_MS);
const histogram = new Uint32Array(BUCKETS + 1);
let step = null;       // the step being measured
let stepCounter = 0;
let lastArrival = 0;
let lateDeliveries = 0;  // deliveries of an earlier step's message

let otherMessages = 0;  // frames with no benchmark message in them (e.g. an error reply)

function onMessage(stepId, seq, sentAt, now) {
  if (step === null || stepId !== step.id) { lateDeliveries += 1; return; }
  const latency = now - sentAt;
  const bucket = Math.min(BUCKETS, Math.floor(latency / BUCKET_MS));
  histogram[bucket] += 1;
  if (latency > step.max) step.max = latency;
  step.received += 1;
  const count = ++step.counts[seq];
  if (count > step.clients) step.duplicates += 1;
  if (count === step.clients && seq === step.oldest) {
    while (step.oldest < step.sent && step.counts[step.oldest] >= step.clients) step.oldest += 1;
  }
}

function percentile(total, fraction) {
  if (!total) return null;
  const rank = Math.ceil(total * fraction);
  let seen = 0;
  for (let i = 0; i <= BUCKETS; i++) {
    seen += histogram[i];
    if (seen >= rank) return i === BUCKETS ? Infinity : (i + 1) * BUCKET_MS;
  }
  return Infinity;
}

function serverCpuSeconds() {
  if (!cfg.server_pid) return null;
  try {
    const stat = fs.readFileSync(`/proc/${cfg.server_pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (+fields[11] + +fields[12]) / 100;  // utime + stime, in clock ticks (USER_HZ = 100)
  } catch (error) {
    return null;
  }
}

function coreBusy() {
  // Busy clock ticks of every core since boot, from /proc/stat: [cpu0, cpu1, ...].
  try {
    return fs.readFileSync('/proc/stat', 'utf8').split('\n')
      .filter((line) => /^cpu\d/.test(line))
      .map((line) => {
        const ticks = line.split(/\s+/).slice(1).map(Number);
        return ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7];  // not idle/iowait
      });
  } catch (error) {
    return null;
  }
}

function runQueueWait(pid) {
  // Nanoseconds the process's main thread spent runnable but waiting for a CPU
  // (/proc/PID/schedstat, second field): the contention it suffered from other processes.
  try {
    return +fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1];
  } catch (error) {
    return null;
  }
}

function serverRssKiB() {
  if (!cfg.server_pid) return null;
  try {
    const status = fs.readFileSync(`/proc/${cfg.server_pid}/status`, 'utf8');
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match ? +match[1] : null;
  } catch (error) {
    return null;
  }
}

async function runStep(clients, senders, deliveriesPerSecond, durationMs, label) {
  const n = clients.length;
  const messagesPerSecond = deliveriesPerSecond / n;
  const maxMessages = Math.ceil(messagesPerSecond * durationMs / 1000) + 16;
  stepCounter += 1;
  histogram.fill(0);
  lateDeliveries = 0;
  otherMessages = 0;
  step = {
    id: stepCounter, clients: n, counts: new Uint32Array(maxMessages), sent: 0, oldest: 0,
    received: 0, duplicates: 0, max: 0, frames: 0,
  };
  const sendTimes = new Float64Array(maxMessages);
  const cpuBefore = process.cpuUsage();
  const eluBefore = performance.eventLoopUtilization();
  const serverCpuBefore = serverCpuSeconds();
  const busyBefore = coreBusy();
  const waitBefore = [runQueueWait(cfg.server_pid || 'self'), runQueueWait('self')];
  const start = performance.now();
  let aborted = false;
  let abortReason = null;

  let lastTick = start;
  let ticks = 0;
  let maxTickGap = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      if (now - lastTick > maxTickGap) maxTickGap = now - lastTick;
      lastTick = now;
      const elapsed = now - start;
      const due = Math.min(maxMessages - 16, Math.floor(messagesPerSecond * Math.min(elapsed, durationMs) / 1000));
      while (step.sent < due) {
        const seq = step.sent;
        const sentAt = performance.now();
        sendTimes[seq] = sentAt;
        step.sent += 1;
        senders[seq % senders.length].send(`${step.id}:${seq}:${sentAt.toFixed(3)}`);
      }
      if (step.oldest < step.sent && now - sendTimes[step.oldest] > cfg.abort_age_ms) {
        aborted = true;
        abortReason = `a message undelivered after ${cfg.abort_age_ms} ms`;
      }
      if (++ticks % 25 === 0) {
        const dead = clients.reduce((sum, client) => sum + (client.closed ? 1 : 0), 0);
        if (dead) { aborted = true; abortReason = `${dead} clients closed`; }
      }
      if (aborted || elapsed >= durationMs) { clearInterval(timer); resolve(); }
    };
    const timer = setInterval(tick, 2);
  });
  const sendEnd = performance.now();
  const expected = step.sent * n;
  // Drain: wait for the deliveries still under way, for at most drain_ms.
  if (!aborted) {
    while (step.received < expected && performance.now() - sendEnd < cfg.drain_ms) await sleep(5);
  }
  const end = performance.now();
  const cpu = process.cpuUsage(cpuBefore);
  const elu = performance.eventLoopUtilization(eluBefore);
  const serverCpuAfter = serverCpuSeconds();
  const busyAfter = coreBusy();
  const waitAfter = [runQueueWait(cfg.server_pid || 'self'), runQueueWait('self')];
  const received = step.received;
  const frames = step.frames;
  const sendSeconds = (sendEnd - start) / 1000;
  const wallSeconds = (end - start) / 1000;
  const result = {
    label,
    rate: deliveriesPerSecond,
    messages_per_s: messagesPerSecond,
    clients: n,
    sent: step.sent,
    expected,
    received,
    loss: expected - received,  // not delivered within the step and its drain time
    undelivered: null,          // never delivered (see below)
    duplicates: step.duplicates,
    // Frames that carried this step's messages, per delivery: 1.0 is one frame (one write by
    // the server, one read here) per delivery; below 1.0 the server batched.
    frames,
    frames_per_delivery: received ? frames / received : null,
    late_from_earlier_steps: lateDeliveries,
    other_frames: otherMessages,
    seconds: sendSeconds,
    delivered_per_s: received / wallSeconds,
    p50_ms: percentile(received, 0.50),
    p95_ms: percentile(received, 0.95),
    p99_ms: percentile(received, 0.99),
    max_ms: step.max,
    // The longest gap between two ticks of the sending timer (set for every 2 ms): the load
    // generator's own stalls (its event loop busy, or its core taken by another process).
    loadgen_max_tick_gap_ms: maxTickGap,
    loadgen_cpu: (cpu.user + cpu.system) / 1e6 / wallSeconds,
    loadgen_cpu_system: cpu.system / 1e6 / wallSeconds,
    // Share of the step the event loop was busy rather than waiting for events: near 1 the
    // load generator could not keep up.
    loadgen_elu: elu.utilization,
    server_cpu: serverCpuBefore === null || serverCpuAfter === null ? null
      : (serverCpuAfter - serverCpuBefore) / wallSeconds,
    // The server's CPU time (utime + stime) over the step, its drain included, and that per
    // delivery received in the step, in microseconds: what a delivery costs the server.
    server_cpu_seconds: serverCpuBefore === null || serverCpuAfter === null ? null
      : serverCpuAfter - serverCpuBefore,
    server_us_per_delivery: serverCpuBefore === null || serverCpuAfter === null || !received
      ? null : (serverCpuAfter - serverCpuBefore) * 1e6 / received,
    // Each core's busy fraction during the step: with the server alone on core 0 and the
    // load generator alone on core 1, busy minus their own use is other processes' noise.
    core_busy: busyBefore && busyAfter
      ? busyAfter.map((ticks, i) => (ticks - busyBefore[i]) / 100 / wallSeconds) : null,
    server_rss_kib: serverRssKiB(),
    // CPU that other processes took on the two cores (busy minus the server's and ours).
    other_load: null,
    // Share of the step the server's and the load generator's main threads were runnable
    // but waited for their core: how much other processes got in their way.
    run_queue_wait: waitBefore.map((before, i) => (before === null || waitAfter[i] === null ? null
      : (waitAfter[i] - before) / 1e9 / wallSeconds)),
    aborted,
    abort_reason: abortReason,
  };
  if (step.received < expected) {
    // Let the backlog drain, so that the next step starts on a quiet server, and count what
    // still arrives: `loss` (not in time) fails the step, `undelivered` is what never came
    // (nothing arrived for quiet_ms, or max_quiet_wait_ms passed).
    const quietStart = performance.now();
    lastArrival = performance.now();
    while (step.received < expected && performance.now() - lastArrival < cfg.quiet_ms &&
           performance.now() - quietStart < cfg.max_quiet_wait_ms) await sleep(20);
  }
  result.undelivered = expected - step.received;
  if (result.core_busy && result.server_cpu !== null && result.core_busy.length >= 2) {
    result.other_load = [Math.max(0, result.core_busy[cfg.server_core] - result.server_cpu),
      Math.max(0, result.core_busy[cfg.loadgen_core] - result.loadgen_cpu)];
  }
  const p95 = result.p95_ms === null ? Infinity : result.p95_ms;
  result.pass = !aborted && result.loss === 0 && p95 <= cfg.threshold_ms;
  step = null;
  const fmt = (value) => (value === null ? '-' : value === Infinity ? 'inf' : value.toFixed(1));
  log(`${label.padEnd(8)} ${String(Math.round(deliveriesPerSecond)).padStart(8)} deliveries/s  ` +
      `got ${Math.round(result.delivered_per_s)}/s p50 ${fmt(result.p50_ms)} p95 ${fmt(result.p95_ms)} ` +
      `p99 ${fmt(result.p99_ms)} ms loss ${result.loss} ` +
      `${result.server_us_per_delivery === null ? '-' : result.server_us_per_delivery.toFixed(1)} us/delivery ` +
      `${result.frames_per_delivery === null ? '-' : result.frames_per_delivery.toFixed(2)} frames/delivery loadgen cpu ${(result.loadgen_cpu * 100).toFixed(0)}% (sys ${(result.loadgen_cpu_system * 100).toFixed(0)}%, loop ${(result.loadgen_elu * 100).toFixed(0)}%) ` +
      `server cpu ${result.server_cpu === null ? '-' : (result.server_cpu * 100).toFixed(0) + '%'} ` +
      `others ${result.other_load ? result.other_load.map((x) => (x * 100).toFixed(0) + '%').join('/') : '-'} ` +
      `waited ${result.run_queue_wait.map((x) => (x === null ? '-' : (x * 100).toFixed(1) + '%')).join('/')} ` +
      `${result.pass ? 'pass' : 'FAIL' + (abortReason ? ' (' + abortReason + ')' : '')}`);
  return result;
}

async function reconnect(clients) {
  const alive = clients.filter((client) => !client.closed);
  const missing = clients.length - alive.length;
  if (!missing) return { clients, reconnected: 0 };
  log(`reconnecting ${missing} closed clients`);
  const fresh = [];
  const failures = await connectMany(missing, fresh);
  await sleep(300);
  return { clients: alive.concat(fresh), reconnected: missing - failures, failures };
}

async function ramp() {
  let clients = [];
  const t0 = performance.now();
  const failures = await connectMany(cfg.clients, clients);
  const connectSeconds = (performance.now() - t0) / 1000;
  if (failures || clients.length < cfg.clients) {
    return { error: `only ${clients.length} of ${cfg.clients} clients connected` };
  }
  log(`${clients.length} clients connected in ${connectSeconds.toFixed(2)} s (${cfg.transport})`);
  await sleep(500);
  const steps = [];
  let reconnects = 0;
  const once = async (rate, duration, label) => {
    const senders = clients.slice(0, Math.min(cfg.senders, clients.length));
    const result = await runStep(clients, senders, rate, duration, label);
    steps.push(result);
    if (result.aborted) {
      const after = await reconnect(clients);
      clients = after.clients;
      reconnects += after.reconnected;
      if (clients.length < cfg.clients) throw new Error('could not reconnect every client');
    }
    return result;
  };
  // A failed step is run once more before it counts (confirm_failures): on a shared machine
  // one burst of someone else's work can fail a step the server would pass.
  // A failure during which the server or the load generator waited for its core for longer than
  // noisy_wait (other processes had it) is retried, after a pause, up to noisy_retries times;
  // the step it finally gives is kept with its `disturbed` flag.
  const disturbed = (result) => result.run_queue_wait.some(
    (x, i) => x !== null && x > cfg.noisy_wait[i]);
  const run = async (rate, duration, label) => {
    let result = await once(rate, duration, label);
    if (result.pass || label === 'warmup') return result;
    let confirmations = cfg.confirm_failures ? 1 : 0;
    let noisyTries = 0;
    while (!result.pass) {
      const noisy = disturbed(result);
      if (noisy && noisyTries < cfg.noisy_retries) {
        noisyTries += 1;
        log(`server/load generator waited ${result.run_queue_wait.map((x) => (x * 100).toFixed(1) + '%').join('/')}` +
            ' of the step for their cores: trying again');
        await sleep(cfg.noisy_pause_ms);
      } else if (!noisy && confirmations > 0) {
        confirmations -= 1;
      } else {
        break;
      }
      result = await once(rate, duration, label + '*');
    }
    result.disturbed = disturbed(result);
    return result;
  };

  await run(cfg.fixed_rate, cfg.warmup_ms, 'warmup');
  const fixed = await run(cfg.fixed_rate, cfg.step_ms, 'fixed');
  let best = fixed.pass ? fixed : null;
  if (cfg.ladder) {
    let lo = fixed.pass ? cfg.fixed_rate : 0;
    let hi = fixed.pass ? null : cfg.fixed_rate;
    if (fixed.pass) {
      let rate = Math.max(cfg.start_rate || 0, cfg.fixed_rate * cfg.factor);
      for (let i = 0; i < cfg.max_doublings; i++) {
        const result = await run(rate, cfg.step_ms, 'double');
        if (!result.pass) { hi = rate; break; }
        lo = rate; best = result; rate *= cfg.factor;
      }
    } else {
      let rate = cfg.fixed_rate / 2;
      for (let i = 0; i < cfg.max_halvings; i++) {
        const result = await run(rate, cfg.step_ms, 'halve');
        if (result.pass) { lo = rate; best = result; break; }
        hi = rate; rate /= 2;
      }
    }
    if (lo && hi) {
      for (let i = 0; i < cfg.bisections; i++) {
        const rate = Math.round(Math.sqrt(lo * hi));  // geometric: the ladder is geometric
        const result = await run(rate, cfg.step_ms, 'bisect');
        if (result.pass) { lo = rate; best = result; } else { hi = rate; }
      }
    }
  }
  for (const client of clients) client.close();
  return {
    transport: cfg.transport,
    clients: cfg.clients,
    senders: Math.min(cfg.senders, cfg.clients),
    connect_seconds: connectSeconds,
    fixed,
    best_rate: best ? best.rate : 0,
    best,
    reconnects,
    loadgen_cpu_max: Math.max(...steps.filter((s) => s.label !== 'warmup').map((s) => s.loadgen_cpu)),
    steps,
  };
}

async function idle() {
  const clients = [];
  const input = readline.createInterface({ input: process.stdin });
  const lines = input[Symbol.asyncIterator]();
  const levels = [];
  for (const level of cfg.levels) {
    const t0 = performance.now();
    const failures = await connectMany(level - clients.length, clients);
    const seconds = (performance.now() - t0) / 1000;
    log(`${clients.length} idle connections (${failures} failed) in ${seconds.toFixed(1)} s`);
    await sleep(2000);
    const open = clients.filter((client) => !client.closed).length;
    process.stdout.write(JSON.stringify({ ready: level, open, failures, connect_seconds: seconds }) + '\n');
    const answer = await lines.next();
    levels.push({ level, open, failures, connect_seconds: seconds });
    if (answer.done) break;
  }
  for (const client of clients) client.close();
  input.close();
  return { levels };
}

async function storm() {
  // Every session is created in one go: the connects, the handshakes and the `o` frames all
  // compete, as when every client of a restarted server comes back at once.
  const count = cfg.storm_sessions;
  const clients = [];
  const openTimes = [];
  const errors = {};
  let failures = 0;
  const serverCpuBefore = serverCpuSeconds();
  const cpuBefore = process.cpuUsage();
  const eluBefore = performance.eventLoopUtilization();
  const start = performance.now();
  let last = start;
  await new Promise((resolve) => {
    let pending = count;
    const settle = () => { pending -= 1; if (pending === 0) resolve(); };
    for (let i = 0; i < count; i++) {
      const client = new WebSocketClient();
      clients.push(client);
      client.connect(cfg.storm_timeout_ms).then(() => {
        last = performance.now();
        openTimes.push(last - start);
        settle();
      }, (error) => {
        failures += 1;
        const kind = String(error && (error.code || error.message) || error).slice(0, 80);
        errors[kind] = (errors[kind] || 0) + 1;
        settle();
      });
    }
  });
  const seconds = (last - start) / 1000;
  const wall = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const elu = performance.eventLoopUtilization(eluBefore);
  const serverCpuAfter = serverCpuSeconds();
  openTimes.sort((a, b) => a - b);
  const quantile = (q) => (openTimes.length
    ? openTimes[Math.min(openTimes.length - 1, Math.ceil(openTimes.length * q) - 1)] / 1000 : null);
  await sleep(500);
  const stillOpen = clients.filter((client) => client.opened && !client.closed).length;
  for (const client of clients) client.close();
  log(`storm: ${openTimes.length} of ${count} sessions open in ${seconds.toFixed(2)} s ` +
      `(p50 ${(quantile(0.5) || 0).toFixed(2)} s, p95 ${(quantile(0.95) || 0).toFixed(2)} s), ` +
      `${failures} failed ${JSON.stringify(errors)}`);
  return {
    sessions: count,
    opened: openTimes.length,
    failures,
    errors,
    still_open: stillOpen,
    // From the first connect to the last `o` frame (of the sessions that opened).
    seconds,
    open_p50_s: quantile(0.5),
    open_p95_s: quantile(0.95),
    server_cpu_seconds: serverCpuBefore === null || serverCpuAfter === null ? null
      : serverCpuAfter - serverCpuBefore,
    loadgen_cpu: (cpu.user + cpu.system) / 1e6 / wall,
    loadgen_elu: elu.utilization,
    loadgen_nofile: openFileLimit(),
  };
}

function openFileLimit() {
  // The soft RLIMIT_NOFILE of this process (/proc/self/limits): a storm needs one a session.
  try {
    const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n')
      .find((row) => row.startsWith('Max open files'));
    const value = line.split(/\s+/)[3];
    return value === 'unlimited' ? null : +value;
  } catch (error) {
    return null;
  }
}

(async () => {
  let result;
  try {
    result = cfg.mode === 'idle' ? await idle() : cfg.mode === 'storm' ? await storm()
      : await ramp();
  } catch (error) {
    result = { error: String(error && error.stack || error) };
  }
  process.stdout.write(JSON.stringify(result) + '\n');
  setTimeout(() => process.exit(0), 100);
})();
