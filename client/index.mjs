// The realtimemagic client as an ES module: `import realtimeMagic, { Client } from
// 'realtimemagic-client'`.  realtimemagic.js is a UMD-style script (docs/client.md): under
// Node or a bundler it is CommonJS and its module.exports arrives here as the default export;
// loaded as a module by a browser it has no exports and sets the global instead.
import * as loaded from './realtimemagic.js';

const realtimeMagic = loaded.default && loaded.default.Client ? loaded.default
  : globalThis.realtimeMagic;

export const Client = realtimeMagic.Client;
export const backoff = realtimeMagic.backoff;
export const websocketUrl = realtimeMagic.websocketUrl;
export const sockjsUrl = realtimeMagic.sockjsUrl;
export const version = realtimeMagic.version;
export { realtimeMagic };
export default realtimeMagic;
