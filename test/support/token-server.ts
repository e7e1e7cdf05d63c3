/**
 * A Bearer-token front for the real registry, on loopback: a reverse proxy that demands
 * `Authorization: Bearer` tokens with the right `repository:NAME:ACTIONS` scopes, issues them from its
 * own `/token` endpoint after checking Basic credentials, and forwards authorised requests (Host header
 * kept, so the registry's absolute Locations point back at the proxy) to the registry. This exercises
 * dimg's challenge → token → retry flow against real registry behaviour.
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

/** A running token proxy. */
export interface TokenProxy {
  host: string;
  url: string;
  /** Every token issued (tests grep output for them). */
  issued: string[];
  /** Token requests: their scope lists, in order. */
  tokenRequests: { scopes: string[]; user: string | undefined }[];
  /** Requests answered 401 by the proxy. */
  challenges: number;
  /** Makes every issued token invalid (as if expired), to exercise refresh on 401. */
  revokeAll(): void;
  stop(): Promise<void>;
}

/** Options: the registry to front, the users allowed, token lifetime. */
export interface TokenProxyOptions {
  upstream: string;
  users: Record<string, string>;
  /** Seconds (default 300). */
  expiresIn?: number;
  service?: string;
}

interface Grant {
  scopes: Map<string, Set<string>>;
  expires: number;
}

/** Starts the proxy on a free 127.0.0.1 port. */
export async function startTokenProxy(opts: TokenProxyOptions): Promise<TokenProxy> {
  const service = opts.service ?? 'dimg-test-token';
  const grants = new Map<string, Grant>();
  const up = new URL(opts.upstream);
  const state: TokenProxy = {
    host: '',
    url: '',
    issued: [],
    tokenRequests: [],
    challenges: 0,
    revokeAll: () => grants.clear(),
    stop: async () => {},
  };

  const challenge = (res: http.ServerResponse, scope: string | undefined, error?: string) => {
    state.challenges++;
    let h = `Bearer realm="${state.url}/token",service="${service}"`;
    if (scope) h += `,scope="${scope}"`;
    if (error) h += `,error="${error}"`;
    res.writeHead(401, { 'www-authenticate': h, 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
    res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required', detail: null }] }));
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/token') {
      const [user, pass] = basic(req.headers.authorization);
      if (user === undefined || opts.users[user] !== pass) {
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="token"' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] }));
        return;
      }
      const scopes = url.searchParams.getAll('scope');
      state.tokenRequests.push({ scopes, user });
      const g: Grant = { scopes: new Map(), expires: Date.now() + (opts.expiresIn ?? 300) * 1000 };
      for (const s of scopes) {
        const m = /^repository:([^:]+):(.+)$/.exec(s);
        if (m) g.scopes.set(m[1]!, new Set(m[2]!.split(',')));
      }
      const token = randomBytes(24).toString('base64url');
      grants.set(token, g);
      state.issued.push(token);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token, access_token: token, expires_in: opts.expiresIn ?? 300, issued_at: new Date().toISOString() }));
      return;
    }
    const auth = req.headers.authorization ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
    const grant = token ? grants.get(token) : undefined;
    const need = requiredScopes(req.method ?? 'GET', url);
    if (!grant || grant.expires < Date.now()) {
      req.resume();
      challenge(res, need[0] ? `repository:${need[0].name}:${need[0].actions.join(',')}` : undefined, token ? 'invalid_token' : undefined);
      return;
    }
    for (const n of need) {
      const have = grant.scopes.get(n.name);
      if (!n.actions.every((a) => have?.has(a))) {
        req.resume();
        challenge(res, `repository:${n.name}:${n.actions.join(',')}`, 'insufficient_scope');
        return;
      }
    }
    const headers = { ...req.headers };
    delete headers.authorization;
    const preq = http.request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers }, (pres) => {
      res.writeHead(pres.statusCode ?? 502, pres.headers);
      pres.pipe(res);
    });
    preq.on('error', () => res.destroy());
    req.pipe(preq);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  state.host = `127.0.0.1:${port}`;
  state.url = `http://${state.host}`;
  state.stop = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return state;
}

function basic(h: string | undefined): [string | undefined, string | undefined] {
  if (!h?.startsWith('Basic ')) return [undefined, undefined];
  const s = Buffer.from(h.slice(6), 'base64').toString('utf8');
  const i = s.indexOf(':');
  return i < 0 ? [undefined, undefined] : [s.slice(0, i), s.slice(i + 1)];
}

/** The scopes a registry request needs: pull for reads, pull+push for writes, pull on `from` for mounts. */
function requiredScopes(method: string, url: URL): { name: string; actions: string[] }[] {
  const m = /^\/v2\/(.+?)\/(manifests|blobs|tags)\//.exec(url.pathname);
  if (!m) return [];
  const write = !(method === 'GET' || method === 'HEAD');
  const out = [{ name: m[1]!, actions: write ? ['pull', 'push'] : ['pull'] }];
  const from = url.searchParams.get('from');
  if (method === 'POST' && from && url.searchParams.get('mount')) out.push({ name: from, actions: ['pull'] });
  return out;
}
