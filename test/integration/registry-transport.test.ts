import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { isDimgError } from '../../src/errors.js';
import { sha256 } from '../../src/oci/digest.js';
import { Redactor, RegistryClient } from '../../src/registry/index.js';
import { startRegistry } from '../support/registry.js';
import { requireTool, run } from '../support/tools.js';
import { tempDir } from '../support/tmp.js';
import { assertNoSecrets, basicForm, makeImage, pushImage, readAllStream } from './registry-fixtures.js';

function listen(server: http.Server): Promise<string> {
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(`127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

function forward(upstream: URL, req: http.IncomingMessage, res: http.ServerResponse, headers = req.headers): void {
  const p = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (pr) => {
    res.writeHead(pr.statusCode ?? 502, pr.headers);
    pr.pipe(res);
  });
  p.on('error', () => res.destroy());
  req.pipe(p);
}

test('HTTPS: certificates are verified by default, an extra CA makes a private registry trusted', async (t) => {
  requireTool('openssl', 'openssl');
  const dir = tempDir(t);
  const sh = (args: string[]) => run('openssl', args, { cwd: dir });
  sh(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=dimg test CA']);
  sh(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=127.0.0.1']);
  run('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1\\n" > ext.cnf'], { cwd: dir });
  sh(['x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.pem', '-days', '2', '-extfile', 'ext.cnf']);
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const up = new URL(reg.url);
  const tls = https.createServer({ key: readFileSync(join(dir, 'srv.key')), cert: readFileSync(join(dir, 'srv.pem')) }, (req, res) =>
    // As a TLS-terminating proxy does: tell the registry the scheme so its upload Locations are https.
    forward(up, req, res, { ...req.headers, 'x-forwarded-proto': 'https' }),
  );
  const host = await listen(tls);
  t.after(() => {
    tls.closeAllConnections();
    tls.close();
  });

  const untrusted = new RegistryClient({ tls: [host], retry: { attempts: 3, baseDelayMs: 10 } });
  t.after(() => untrusted.close());
  await assert.rejects(untrusted.repository({ domain: host, path: 'tls/app' }).listTags(), (e: unknown) => isDimgError(e, 'REGISTRY_TLS') && e.message.includes(host) && /--ca-file/.test(e.hint));

  const trusted = new RegistryClient({ tls: [host], ca: readFileSync(join(dir, 'ca.pem')) });
  t.after(() => trusted.close());
  const repo = trusted.repository({ domain: host, path: 'tls/app' });
  const img = makeImage();
  await pushImage(repo, img, 'v1');
  assert.equal((await repo.getManifest('v1')).digest, img.digest);
});

test('blob redirects are followed without sending Authorization to the other host', async (t) => {
  const USER = 'redir';
  const PASS = 'redirect-secret-pw';
  const reg = await startRegistry({ auth: { username: USER, password: PASS } });
  t.after(() => reg.stop());
  const up = new URL(reg.url);
  // "Storage" on another origin: records what it was sent, fetches the blob from the registry itself.
  const seen: (string | undefined)[] = [];
  const storage = http.createServer((req, res) => {
    seen.push(req.headers.authorization);
    const digest = req.url!.split('/').pop()!;
    const headers = { authorization: `Basic ${basicForm(USER, PASS)}`, host: up.host };
    const p = http.request({ host: up.hostname, port: up.port, path: `/v2/redir/app/blobs/${digest}`, headers }, (pr) => {
      res.writeHead(pr.statusCode ?? 502, { 'content-length': pr.headers['content-length'] ?? '' });
      pr.pipe(res);
    });
    p.end();
  });
  const storageHost = await listen(storage);
  t.after(() => {
    storage.closeAllConnections();
    storage.close();
  });
  let redirects = 0;
  const front = http.createServer((req, res) => {
    const m = /^\/v2\/redir\/app\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '');
    if (req.method === 'GET' && m && req.headers.authorization) {
      redirects++;
      res.writeHead(307, { location: `http://${storageHost}/data/${m[1]}` });
      res.end();
      return;
    }
    forward(up, req, res);
  });
  const host = await listen(front);
  t.after(() => {
    front.closeAllConnections();
    front.close();
  });
  const logs: string[] = [];
  const client = new RegistryClient({ credentials: { explicit: { [host]: { username: USER, password: PASS } } }, log: (l) => logs.push(l) });
  t.after(() => client.close());
  const repo = client.repository({ domain: host, path: 'redir/app' });
  const img = makeImage();
  await pushImage(repo, img, 'v1');
  const layer = img.layers[0]!;
  const bytes = await readAllStream(await repo.getBlob(layer.desc.digest, layer.desc.size));
  assert.equal(sha256(bytes), layer.desc.digest);
  assert.equal(redirects, 1);
  assert.deepEqual(seen, [undefined], 'no Authorization header reached the other host');
  assertNoSecrets(logs, [PASS, basicForm(USER, PASS)]);
});

test('redaction: registered secrets, their base64 Basic form, and header/query/JSON-shaped secrets', () => {
  const r = new Redactor();
  r.addBasic('user', 'hunter2-password');
  r.add('tok.en-value-123', 'ab');
  const text = [
    'password hunter2-password here',
    `Authorization: Basic ${basicForm('user', 'hunter2-password')}`,
    'authorization=Bearer eyJhbGciOi.something',
    'GET /token?service=x&access_token=zzz-secret&scope=a',
    '{"auth":"dXNlcjpwYXNz","identitytoken":"idtok-secret"}',
    'token tok.en-value-123 and word ab but not abc',
  ].join('\n');
  const out = r.redact(text);
  for (const s of ['hunter2-password', basicForm('user', 'hunter2-password'), 'eyJhbGciOi.something', 'zzz-secret', 'dXNlcjpwYXNz', 'idtok-secret', 'tok.en-value-123']) {
    assert.ok(!out.includes(s), `${s} survived: ${out}`);
  }
  assert.match(out, /not abc/);
  assert.match(out, /scope=a/);
});

test('tag listing follows Link pagination (a paginating front over the real registry answer)', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const up = new URL(reg.url);
  const pages: string[] = [];
  // Splits the registry's full tag list into pages of `n`, as registries after 2.8 do, with a relative Link.
  const front = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (!url.pathname.endsWith('/tags/list')) return forward(up, req, res);
    pages.push(url.search);
    http.get({ host: up.hostname, port: up.port, path: url.pathname, headers: { host: req.headers.host } }, async (pr) => {
      const all = (JSON.parse((await readAllStream(pr)).toString()) as { name: string; tags: string[] });
      const n = Number(url.searchParams.get('n') ?? 1000);
      const last = url.searchParams.get('last');
      const rest = all.tags.sort().filter((x) => last === null || x > last);
      const page = rest.slice(0, n);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (rest.length > n) headers.link = `<${url.pathname}?n=${n}&last=${page[page.length - 1]}>; rel="next"`;
      res.writeHead(200, headers);
      res.end(JSON.stringify({ name: all.name, tags: page }));
    });
  });
  const host = await listen(front);
  t.after(() => {
    front.closeAllConnections();
    front.close();
  });
  const client = new RegistryClient();
  t.after(() => client.close());
  const repo = client.repository({ domain: host, path: 'paged/app' });
  const img = makeImage();
  await pushImage(repo, img, 't0');
  const want = ['t0'];
  for (let i = 1; i <= 6; i++) {
    await repo.putManifest(`t${i}`, img.manifest, img.mediaType);
    want.push(`t${i}`);
  }
  assert.deepEqual(await repo.listTags(3), want);
  assert.deepEqual(pages, ['?n=3', '?n=3&last=t2', '?n=3&last=t5']);
});
