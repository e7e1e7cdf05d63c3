/**
 * Registry answers and transport that dimg must not trust (issue #20):
 *  - a manifest over the size limit is refused once, as too large, naming the reference and the
 *    limit; it is not mistaken for a broken connection and fetched again;
 *  - `dimg login` warns on stderr before a password goes over plain HTTP, unless --insecure said
 *    the registry is meant to be plain HTTP; over HTTPS it says nothing;
 *  - a Bearer realm or a redirect from HTTPS to plain HTTP is refused before anything is sent to it,
 *    and Basic credentials never go to a token realm on another host over plain HTTP;
 *  - only the registry's own origin gets its Authorization: not storage that a blob GET is
 *    redirected to, not an upload Location on another host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { RegistryClient } from '../../src/registry/index.js';
import { sha256 } from '../../src/oci/digest.js';
import { dimg, type CliResult } from '../support/cli.js';
import { startRegistry } from '../support/registry.js';
import { makeCertificates, TLS_HOSTNAME } from '../support/tls-registry.js';
import { tempDir } from '../support/tmp.js';
import { assertNoSecrets, basicForm, makeImage, pushImage, readAllStream } from '../integration/registry-fixtures.js';

const USER = 'sec-user';
const PASS = 'Sec-Registry-Pa55-never-leaks';
const BASIC = `Basic ${basicForm(USER, PASS)}`;

/** Env for dimg children: names ending in .dimg.test resolve to 127.0.0.1 (see dns-preload.ts). */
function preloadEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const preload = pathToFileURL(join(fileURLToPath(new URL('../support/', import.meta.url)), 'dns-preload.js')).href;
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${preload}`.trim(), ...extra };
}

type TestHooks = { after(fn: () => unknown): void };

/** Starts `srv` on a free 127.0.0.1 port, closed (connections and all) when the test ends. */
async function listen(t: TestHooks, srv: http.Server): Promise<number> {
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(
    () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  );
  return (srv.address() as AddressInfo).port;
}

/** An HTTPS server on 127.0.0.1 with a certificate for registry.dimg.test, from a fresh CA. */
async function serveTls(t: TestHooks, dir: string, handler: http.RequestListener): Promise<{ port: number; ca: string }> {
  const certs = makeCertificates(dir, [TLS_HOSTNAME, '127.0.0.1']);
  const port = await listen(t, https.createServer({ cert: readFileSync(certs.cert), key: readFileSync(certs.key) }, handler));
  return { port, ca: certs.ca };
}

/** Forwards `req` to the registry at `up` (Host kept), optionally rewriting response headers. */
function forward(up: URL, req: http.IncomingMessage, res: http.ServerResponse, rewrite?: (h: http.IncomingHttpHeaders) => void): void {
  const headers = { ...req.headers };
  delete headers.authorization;
  const p = http.request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers }, (pr) => {
    const h = { ...pr.headers };
    rewrite?.(h);
    res.writeHead(pr.statusCode ?? 502, h);
    pr.pipe(res);
  });
  p.on('error', () => res.destroy());
  req.pipe(p);
}

/** A 401 with a challenge. */
function challenge(res: http.ServerResponse, value: string): void {
  res.writeHead(401, { 'www-authenticate': value, 'content-type': 'application/json' });
  res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
}

/** A loopback HTTP server for `handler`, stopped when the test ends; resolves to its `host:port`. */
async function serve(t: TestHooks, handler: http.RequestListener): Promise<string> {
  return `127.0.0.1:${await listen(t, http.createServer(handler))}`;
}

test('a manifest over the size limit is refused once as too large, naming the reference and the limit', async (t) => {
  const big = Buffer.alloc(9 << 20, 0x20);
  const gets: Record<string, number> = {};
  const host = await serve(t, (req, res) => {
    if (req.url === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
      return;
    }
    const tag = /\/manifests\/(\w+)$/.exec(req.url ?? '')?.[1] ?? '?';
    gets[tag] = (gets[tag] ?? 0) + 1;
    // `sized` states its length up front; `chunked` only runs over the limit while it is read.
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/vnd.oci.image.manifest.v1+json' };
    if (tag === 'sized') headers['content-length'] = big.length;
    res.writeHead(200, headers);
    res.end(big);
  });
  const dir = tempDir(t);
  for (const tag of ['sized', 'chunked']) {
    const r = await dimg(['image', 'pull', '--insecure', `${host}/big/manifest:${tag}`], { root: dir, env: { DIMG_DEBUG: '1' }, timeoutMs: 60_000 });
    assert.equal(r.code, 1, `${tag}: ${r.stderr}`);
    assert.match(r.stderr, /^error: .*too large/m, `${tag}: says too large:\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^error: .*big/manifest.*${tag}`, 'm'), `${tag}: names the reference:\n${r.stderr}`);
    assert.match(r.stderr, /^error: .*8 MiB/m, `${tag}: names the limit:\n${r.stderr}`);
    assert.match(r.stderr, /^hint: /m, tag);
    assert.doesNotMatch(r.stderr, /truncat|mid-body|connection/i, `${tag}: not reported as a connection problem:\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /retrying/, `${tag}: not retried:\n${r.stderr}`);
    assert.equal(gets[tag], 1, `${tag}: the manifest was requested ${gets[tag]} times`);
  }
});

test('login warns before a password goes over plain HTTP, unless --insecure says so; never over HTTPS', async (t) => {
  const reg = await startRegistry({ auth: { username: USER, password: PASS } });
  t.after(() => reg.stop());
  const cfg = tempDir(t);
  const runs: CliResult[] = [];
  const login = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = await dimg(['login', ...args, '-u', USER, '--password-stdin'], { env: { DOCKER_CONFIG: cfg, ...env }, input: PASS, timeoutMs: 60_000 });
    runs.push(r);
    return r;
  };
  const warning = /^WARNING! .*plain HTTP/m;

  const plain = await login([reg.host]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stderr, warning, `login over plain HTTP warns:\n${plain.stderr}`);
  assert.ok(plain.stderr.includes(reg.host), 'the warning names the registry');
  // The warning comes before the password is sent, so also when the login then fails.
  const rejected = await dimg(['login', reg.host, '-u', USER, '--password-stdin'], { env: { DOCKER_CONFIG: cfg }, input: 'wrong-password-1', timeoutMs: 60_000 });
  runs.push(rejected);
  assert.equal(rejected.code, 1, rejected.stderr);
  assert.match(rejected.stderr, warning, rejected.stderr);

  const acknowledged = await login(['--insecure', reg.host]);
  assert.equal(acknowledged.code, 0, acknowledged.stderr);
  assert.doesNotMatch(acknowledged.stderr, warning, `--insecure acknowledges plain HTTP:\n${acknowledged.stderr}`);

  // HTTPS (a Basic-auth front with a private CA): no warning.
  const dir = tempDir(t);
  const up = new URL(reg.url);
  const tls = await serveTls(t, dir, (req, res) => {
    if (req.headers.authorization !== BASIC) return challenge(res, 'Basic realm="dimg-test"');
    const headers = { ...req.headers, authorization: BASIC };
    const p = http.request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers }, (pr) => {
      res.writeHead(pr.statusCode ?? 502, pr.headers);
      pr.pipe(res);
    });
    req.pipe(p);
  });
  const secure = await login(['--ca-file', tls.ca, `${TLS_HOSTNAME}:${tls.port}`], preloadEnv());
  assert.equal(secure.code, 0, secure.stderr);
  assert.doesNotMatch(secure.stderr, warning, `login over HTTPS does not warn:\n${secure.stderr}`);
  assertNoSecrets(runs.flatMap((r) => [r.stdout, r.stderr]), [PASS, basicForm(USER, PASS)]);
});

test('a Bearer realm from HTTPS to plain HTTP is refused; Basic credentials never go to a plain-HTTP realm on another host', async (t) => {
  // The token service: records every request; it must see none.
  const tokenRequests: { url: string; authorization?: string }[] = [];
  const tokens = await serve(t, (req, res) => {
    tokenRequests.push({ url: req.url ?? '', authorization: req.headers.authorization });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: 'tok-should-not-be-asked-for' }));
  });
  const tokenPort = tokens.split(':')[1];
  const cfg = tempDir(t);
  const dir = tempDir(t);

  // 1. An HTTPS registry whose realm is plain HTTP (same machine): a downgrade.
  const tls = await serveTls(t, dir, (_req, res) => challenge(res, `Bearer realm="http://127.0.0.1:${tokenPort}/token",service="sec"`));
  const down = await dimg(['login', '--ca-file', tls.ca, `${TLS_HOSTNAME}:${tls.port}`, '-u', USER, '--password-stdin'], { env: preloadEnv({ DOCKER_CONFIG: cfg }), input: PASS, timeoutMs: 60_000 });
  assert.equal(down.code, 1, down.stderr);
  assert.match(down.stderr, /^error: .*(HTTPS|https).*plain HTTP|^error: .*plain HTTP.*(HTTPS|https)/m, `names the downgrade:\n${down.stderr}`);
  assert.ok(down.stderr.includes(`${TLS_HOSTNAME}:${tls.port}`), `names the registry:\n${down.stderr}`);
  assert.match(down.stderr, /^hint: /m);
  assert.equal(tokenRequests.length, 0, 'nothing was sent to the plain-HTTP realm');

  // 2. A plain-HTTP registry whose realm is plain HTTP on another host: no credentials for it.
  const reg = await serve(t, (_req, res) => challenge(res, `Bearer realm="http://auth.dimg.test:${tokenPort}/token",service="sec"`));
  const other = await dimg(['login', reg, '-u', USER, '--password-stdin'], { env: preloadEnv({ DOCKER_CONFIG: cfg }), input: PASS, timeoutMs: 60_000 });
  assert.equal(other.code, 1, other.stderr);
  assert.match(other.stderr, /^error: .*auth\.dimg\.test.*plain HTTP|^error: .*plain HTTP.*auth\.dimg\.test/m, `names the realm's host:\n${other.stderr}`);
  assert.deepEqual(tokenRequests.filter((r) => r.authorization), [], 'no credentials went to the other host');
  assertNoSecrets([down.stdout, down.stderr, other.stdout, other.stderr], [PASS, basicForm(USER, PASS)]);
});

test('redirects from HTTPS to plain HTTP are refused; storage on another origin never gets the registry\'s Authorization', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const up = new URL(reg.url);
  const img = makeImage({ layerCount: 1, layerSize: 4096 });
  const seed = new RegistryClient();
  t.after(() => seed.close());
  await pushImage(seed.repository({ domain: reg.host, path: 'sec/redir' }), img, 'v1');
  const layer = img.layers[0]!;

  // Storage on other origins: plain HTTP, and HTTPS (the same certificate, another port).
  const dir = tempDir(t);
  const seen: { where: string; authorization?: string }[] = [];
  const serveBlob = (where: string): http.RequestListener => (req, res) => {
    seen.push({ where, authorization: req.headers.authorization });
    const p = http.get({ host: up.hostname, port: up.port, path: `/v2/sec/redir/blobs/${req.url!.split('/').pop()}` }, (pr) => {
      res.writeHead(pr.statusCode ?? 502, { 'content-length': pr.headers['content-length'] ?? '' });
      pr.pipe(res);
    });
    p.on('error', () => res.destroy());
  };
  const plainStorage = await serve(t, serveBlob('http'));
  const tlsStorage = await serveTls(t, dir, serveBlob('https'));
  let target = '';
  // The registry front: HTTPS, Basic auth, blob GETs redirected to `target`.
  const frontDir = tempDir(t);
  const front = await serveTls(t, frontDir, (req, res) => {
    if (req.headers.authorization !== BASIC) return challenge(res, 'Basic realm="dimg-test"');
    const m = /^\/v2\/sec\/redir\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '');
    if (req.method === 'GET' && m) {
      res.writeHead(307, { location: `${target}/data/${m[1]}` });
      res.end();
      return;
    }
    forward(up, req, res);
  });
  // Both servers' certificates come from different CAs: trust both.
  const ca = [readFileSync(front.ca), readFileSync(tlsStorage.ca)];
  const client = new RegistryClient({ ca, tls: [`127.0.0.1:${front.port}`], credentials: { explicit: { [`127.0.0.1:${front.port}`]: { username: USER, password: PASS } } } });
  t.after(() => client.close());
  const repo = client.repository({ domain: `127.0.0.1:${front.port}`, path: 'sec/redir' });

  target = `https://127.0.0.1:${tlsStorage.port}`;
  const bytes = await readAllStream(await repo.getBlob(layer.desc.digest, layer.desc.size));
  assert.equal(sha256(bytes), layer.desc.digest);
  assert.deepEqual(seen, [{ where: 'https', authorization: undefined }], 'HTTPS storage was used, without the registry\'s Authorization');

  target = `http://${plainStorage}`;
  await assert.rejects(
    async () => readAllStream(await repo.getBlob(layer.desc.digest, layer.desc.size)),
    (e: Error & { code?: string; hint?: string }) => {
      assert.equal(e.code, 'REGISTRY_REDIRECT_DOWNGRADE', e.message);
      assert.match(e.message, /HTTPS.*plain HTTP/);
      assert.ok(e.message.includes(plainStorage), `names where it was sent: ${e.message}`);
      assert.ok(e.hint, 'has a hint');
      return true;
    },
  );
  assert.equal(seen.filter((s) => s.where === 'http').length, 0, 'nothing went to the plain-HTTP storage');
});

test('an upload Location on another host gets no Authorization from the registry', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const up = new URL(reg.url);
  // "side" is another host (origin) that serves uploads; it records what it was sent.
  const sideSeen: (string | undefined)[] = [];
  let frontHost = '';
  const side = await serve(t, (req, res) => {
    sideSeen.push(req.headers.authorization);
    forward(up, req, res);
  });
  // The front demands Basic credentials and sends uploads to "side" (as storage-backed registries do).
  frontHost = await serve(t, (req, res) => {
    if (req.headers.authorization !== BASIC) return challenge(res, 'Basic realm="dimg-test"');
    forward(up, req, res, (h) => {
      if (typeof h.location === 'string' && /\/blobs\/uploads\//.test(h.location)) h.location = h.location.replace(frontHost, side);
    });
  });
  const client = new RegistryClient({ credentials: { explicit: { [frontHost]: { username: USER, password: PASS } } } });
  t.after(() => client.close());
  const img = makeImage({ layerCount: 1 });
  await pushImage(client.repository({ domain: frontHost, path: 'sec/upload' }), img, 'v1');
  assert.equal((await client.repository({ domain: frontHost, path: 'sec/upload' }).getManifest('v1')).digest, img.digest);
  assert.ok(sideSeen.length > 0, 'the uploads went through the other host');
  assert.deepEqual(sideSeen.filter(Boolean), [], 'the other host got no Authorization header');
});
