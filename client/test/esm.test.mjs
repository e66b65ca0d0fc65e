// The ES module entry point (client/index.mjs) gives the same client as require().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import realtimeMagic, { Client, backoff, websocketUrl } from '../index.mjs';
import * as byPackageName from 'realtimemagic-client';

const require = createRequire(import.meta.url);

test('index.mjs exports the CommonJS module\'s client', () => {
  const commonjs = require('../realtimemagic.js');
  assert.equal(realtimeMagic, commonjs);
  assert.equal(Client, commonjs.Client);
  assert.equal(backoff, commonjs.backoff);
  assert.equal(websocketUrl('http://h/pubsub'), 'ws://h/pubsub/websocket');
  assert.equal(byPackageName.Client, Client, 'the package\'s "exports" (self-reference)');
});
