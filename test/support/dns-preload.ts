/**
 * Preloaded into dimg child processes (NODE_OPTIONS=--import=<this file>) by TLS tests: names ending
 * in `.dimg.test` resolve to 127.0.0.1. dimg treats loopback names (localhost, 127.x) as plain-HTTP
 * registries, as Docker does; a TLS registry on loopback therefore needs a name that is not loopback
 * to dimg but still reaches the test's server, which binds 127.0.0.1 only.
 */
import dns from 'node:dns';

type LookupCb = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;
const original = dns.lookup.bind(dns) as (...args: unknown[]) => void;

(dns as unknown as { lookup: unknown }).lookup = (hostname: string, options: unknown, callback?: unknown): void => {
  const cb = (typeof options === 'function' ? options : callback) as LookupCb;
  const opts = (typeof options === 'object' && options !== null ? options : {}) as dns.LookupOptions;
  if (typeof hostname === 'string' && hostname.endsWith('.dimg.test')) {
    if (opts.all) process.nextTick(() => cb(null, [{ address: '127.0.0.1', family: 4 }]));
    else process.nextTick(() => cb(null, '127.0.0.1', 4));
    return;
  }
  original(hostname, options, callback);
};
