/**
 * A fault-injecting reverse proxy for the real registry, on loopback. Faults are queued rules that
 * fire for a number of matching requests (or at a rate): answer 500/502/503, answer 429 with
 * Retry-After, drop the connection half-way through the response body (or the request body), or
 * stall without answering, or trickle the response body slowly. Everything else is forwarded unchanged (Host kept, so the registry's
 * absolute upload Locations point back through the proxy). Requests are counted by method.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What a fault does. */
export type FaultKind =
  | { kind: 'status'; status: 500 | 502 | 503 | 504 }
  | { kind: 'ratelimit'; retryAfterSeconds: number }
  | { kind: 'drop-response' }
  /** Ends the response cleanly after half its body, with Content-Length removed (chunked): only digest/size checks notice. */
  | { kind: 'truncate' }
  | { kind: 'drop-request' }
  | { kind: 'stall'; ms: number }
  /** Forwards the response body at about `bytesPerSecond` (a slow link), in small slices. */
  | { kind: 'trickle'; bytesPerSecond: number };

/** A fault rule: fires for the next `count` matching requests, or for each with probability `rate`. */
export type FaultRule = FaultKind & {
  /** Which requests it applies to (default: all). */
  match?: (method: string, path: string) => boolean;
  count?: number;
  rate?: number;
};

/** A running fault proxy. */
export interface FaultProxy {
  host: string;
  url: string;
  /** Requests seen, by method (faulted ones included). */
  counts: Record<string, number>;
  /** Faults fired, by kind. */
  fired: Record<string, number>;
  /** Response bytes sent by `trickle` faults so far. */
  trickled: number;
  /** Adds a rule; rules are checked in the order added. */
  inject(rule: FaultRule): void;
  /** Removes every rule and zeroes the counters. */
  reset(): void;
  /** Write requests (POST, PUT, PATCH, DELETE) seen. */
  writes(): number;
  stop(): Promise<void>;
}

/** Starts the proxy in front of `upstream` (`http://127.0.0.1:PORT`). */
export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const up = new URL(upstream);
  let rules: (FaultRule & { left: number })[] = [];
  const sockets = new Set<Socket>();
  const p: FaultProxy = {
    host: '',
    url: '',
    counts: {},
    fired: {},
    trickled: 0,
    inject(rule) {
      rules.push({ ...rule, left: rule.count ?? (rule.rate !== undefined ? Infinity : 1) });
    },
    reset() {
      rules = [];
      for (const k of Object.keys(p.counts)) delete p.counts[k];
      for (const k of Object.keys(p.fired)) delete p.fired[k];
      p.trickled = 0;
    },
    writes() {
      return ['POST', 'PUT', 'PATCH', 'DELETE'].reduce((n, m) => n + (p.counts[m] ?? 0), 0);
    },
    stop: async () => {},
  };

  const pick = (method: string, path: string): FaultKind | undefined => {
    for (const r of rules) {
      if (r.left <= 0) continue;
      if (r.match && !r.match(method, path)) continue;
      if (r.rate !== undefined && Math.random() >= r.rate) continue;
      r.left--;
      return r;
    }
    return undefined;
  };

  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    p.counts[method] = (p.counts[method] ?? 0) + 1;
    const fault = pick(method, path);
    if (fault) p.fired[fault.kind] = (p.fired[fault.kind] ?? 0) + 1;
    switch (fault?.kind) {
      case 'status':
        req.resume();
        res.writeHead(fault.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: fault.status === 503 ? 'UNAVAILABLE' : 'UNKNOWN', message: 'injected fault' }] }));
        return;
      case 'ratelimit':
        req.resume();
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(fault.retryAfterSeconds) });
        res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'injected rate limit' }] }));
        return;
      case 'stall':
        req.resume();
        setTimeout(() => req.socket.destroy(), fault.ms);
        return;
      case 'drop-request': {
        // Swallow part of the upload, then cut the connection.
        let n = 0;
        req.on('data', (b: Buffer) => {
          n += b.length;
          if (n > 1024) req.socket.destroy();
        });
        req.on('end', () => req.socket.destroy());
        return;
      }
      default:
        break;
    }
    const preq = http.request({ host: up.hostname, port: up.port, method, path: req.url, headers: req.headers }, (pres) => {
      if (fault?.kind === 'truncate') {
        const len = Number(pres.headers['content-length'] ?? 0);
        const headers = { ...pres.headers };
        delete headers['content-length'];
        res.writeHead(pres.statusCode ?? 502, headers);
        let sent = 0;
        pres.on('data', (b: Buffer) => {
          const room = Math.max(0, Math.floor(len / 2) - sent);
          if (room > 0) res.write(b.subarray(0, room));
          sent += Math.min(room, b.length);
        });
        pres.on('end', () => res.end());
        return;
      }
      res.writeHead(pres.statusCode ?? 502, pres.headers);
      if (fault?.kind === 'trickle') {
        trickle(pres, res, fault.bytesPerSecond, (n) => (p.trickled += n));
        return;
      }
      if (fault?.kind === 'drop-response') {
        const len = Number(pres.headers['content-length'] ?? 0);
        let sent = 0;
        pres.on('data', (b: Buffer) => {
          if (sent + b.length >= len / 2) {
            res.write(b.subarray(0, Math.max(0, Math.floor(len / 2) - sent)));
            res.socket?.destroy();
            pres.destroy();
            return;
          }
          sent += b.length;
          res.write(b);
        });
        pres.on('end', () => res.socket?.destroy());
        return;
      }
      pres.pipe(res);
    });
    preq.on('error', () => res.destroy());
    req.pipe(preq);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  p.host = `127.0.0.1:${port}`;
  p.url = `http://${p.host}`;
  p.stop = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return p;
}

/**
 * Pipes `from` to `to` at about `bytesPerSecond`: slices every 50 ms, the upstream paused while a
 * slice waits. Stops (without error) when the client goes away.
 */
function trickle(from: http.IncomingMessage, to: http.ServerResponse, bytesPerSecond: number, sent: (n: number) => void): void {
  const slice = Math.max(1, Math.round(bytesPerSecond / 20));
  let queue: Buffer[] = [];
  let ended = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    timer = undefined;
    if (to.destroyed) {
      from.destroy();
      return;
    }
    let room = slice;
    while (room > 0 && queue.length > 0) {
      const b = queue[0]!;
      const part = b.subarray(0, room);
      to.write(part);
      sent(part.length);
      room -= part.length;
      if (part.length === b.length) queue.shift();
      else queue[0] = b.subarray(part.length);
    }
    if (queue.length > 0) timer = setTimeout(tick, 50);
    else if (ended) to.end();
    else from.resume();
  };
  from.on('data', (b: Buffer) => {
    queue.push(b);
    from.pause();
    timer ??= setTimeout(tick, 50);
  });
  from.on('end', () => {
    ended = true;
    if (queue.length === 0 && timer === undefined) to.end();
  });
  to.on('close', () => {
    if (timer) clearTimeout(timer);
    queue = [];
    from.destroy();
  });
}
