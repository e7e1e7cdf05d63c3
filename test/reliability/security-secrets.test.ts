/**
 * Secrets stay secret and RUN stays offline:
 *  - registry passwords and Bearer tokens never appear in any output of any command (success,
 *    failure, DIMG_DEBUG=1 logging, login with -p and --password-stdin), plain or base64-encoded;
 *  - a build secret never reaches a layer, the config, the history or the build output, whatever
 *    the RUN step does with it (apart from writing it into the image on purpose, which is not tested);
 *  - a RUN step has no network unless it asks for `network: host`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { dimg, type CliOptions, type CliResult } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { startRegistry } from '../support/registry.js';
import { startTokenProxy } from '../support/token-server.js';
import { tempDir } from '../support/tmp.js';
import { requireRoot } from '../support/tools.js';

const USER = 'reliability-user';
const PASS = 'S3cret-Reliability-Pa55';

/** Every form a secret could leak in: plain, base64 of itself, base64 of user:secret. */
function forms(secret: string, user?: string): string[] {
  const out = [secret, Buffer.from(secret).toString('base64')];
  if (user) out.push(Buffer.from(`${user}:${secret}`).toString('base64'));
  return out.filter((s) => s.length >= 8);
}

function assertNoLeak(outputs: string[], secrets: string[], what: string): void {
  for (const [i, text] of outputs.entries()) {
    for (const s of secrets) assert.ok(!text.includes(s), `${what}: output #${i} contains a secret (${s.slice(0, 3)}…):\n${text}`);
  }
}

test('registry credentials and tokens never appear in any output', async (t) => {
  const reg = await startRegistry({ auth: { username: USER, password: PASS } });
  t.after(() => reg.stop());
  const open = await startRegistry();
  t.after(() => open.stop());
  const tp = await startTokenProxy({ upstream: open.url, users: { [USER]: PASS } });
  t.after(() => tp.stop());
  const dir = tempDir(t);
  makeBusyboxRootfs(join(dir, 'rootfs'));
  const cfg = join(dir, 'docker-config');
  mkdirSync(cfg);
  const runs: CliResult[] = [];
  const run = async (args: string[], env: Record<string, string>, input?: string) => {
    const r = await dimg(args, { root: join(dir, 'store'), cwd: dir, env: { DOCKER_CONFIG: cfg, DIMG_DEBUG: '1', SOURCE_DATE_EPOCH: '0', ...env }, input, timeoutMs: 120_000 });
    runs.push(r);
    return r;
  };
  const specFor = (host: string) => `version: 1
project: creds
registries:
  private: { url: ${host}, auth: { usernameEnv: REG_USER, passwordEnv: REG_PASS } }
images:
  app:
    from: { rootfs: ./rootfs }
    repository: creds/app
    tags: ["1"]
    push: [private]
`;
  // Basic auth (htpasswd): right and wrong passwords, through apply, image tags and login.
  writeFileSync(join(dir, 'basic.yaml'), specFor(reg.host));
  assert.equal((await run(['apply', 'basic.yaml', '--progress', 'plain'], { REG_USER: USER, REG_PASS: PASS })).code, 0, runs.at(-1)!.stderr);
  assert.equal((await run(['apply', 'basic.yaml', '--progress', 'json'], { REG_USER: USER, REG_PASS: PASS })).code, 0);
  assert.equal((await run(['apply', 'basic.yaml', '--progress', 'plain'], { REG_USER: USER, REG_PASS: `${PASS}-wrong` })).code, 1);
  assert.equal((await run(['login', reg.host, '-u', USER, '--password-stdin'], {}, `${PASS}-wrong\n`)).code, 1);
  assert.equal((await run(['login', reg.host, '-u', USER, '-p', PASS], {})).code, 0);
  assert.equal((await run(['image', 'tags', `${reg.host}/creds/app`], {})).code, 0);
  assert.equal((await run(['plan', 'basic.yaml', '--json'], {})).code, 0);
  assert.equal((await run(['logout', reg.host], {})).code, 0);
  assert.equal((await run(['image', 'tags', `${reg.host}/creds/app`], {})).code, 1);

  // Bearer tokens: through the token proxy, then with every token revoked mid-way.
  writeFileSync(join(dir, 'bearer.yaml'), specFor(tp.host));
  assert.equal((await run(['apply', 'bearer.yaml', '--progress', 'plain'], { REG_USER: USER, REG_PASS: PASS })).code, 0, runs.at(-1)!.stderr);
  tp.revokeAll();
  assert.equal((await run(['plan', 'bearer.yaml', '--json'], { REG_USER: USER, REG_PASS: PASS })).code, 0, runs.at(-1)!.stderr);
  assert.equal((await run(['image', 'tags', `${tp.host}/creds/app`], { REG_USER: USER, REG_PASS: PASS })).code, 1);
  assert.ok(tp.issued.length >= 2, 'tokens were issued');

  const secrets = [...forms(PASS, USER), ...forms(`${PASS}-wrong`, USER), ...tp.issued];
  const outputs = runs.flatMap((r) => [r.stdout, r.stderr]);
  assertNoLeak(outputs, secrets, 'registry credentials');
  // The failure paths ran (their messages are where secrets usually slip in).
  assert.ok(outputs.filter((o) => /^error: /m.test(o)).length >= 3, 'the failing runs printed errors');
  console.log(`# credentials: ${runs.length} runs, ${outputs.join('').length} bytes of output scanned for ${secrets.length} secret forms (passwords, base64 user:pass, ${tp.issued.length} tokens): 0 found`);
});

test('build secrets are never in layers, config, history or output; RUN has no network unless it asks', async (t) => {
  requireRoot('RUN steps');
  const dir = tempDir(t);
  makeBusyboxRootfs(join(dir, 'rootfs'));
  const SECRET = 'build-secret-7f3a9c1e5b2d';
  const ENV_SECRET = 'env-secret-93ab17cd05ef';
  writeFileSync(join(dir, 'secret.txt'), SECRET);
  // The step checks the values by hash: the secret itself must not be in the step's text (that text
  // is printed and recorded in the history, as Docker does).
  const sha = (v: string) => createHash('sha256').update(v).digest('hex');
  // A local HTTP server on the host's loopback: reachable only with the host's network. (busybox nc,
  // not wget: the static busybox wget crashes inside the RUN sandbox, which would fake "offline".)
  let hits = 0;
  const server = http.createServer((_req, res) => {
    hits++;
    res.end('reachable\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  writeFileSync(
    join(dir, 'images.yaml'),
    `version: 1
project: secrets
images:
  app:
    from: { rootfs: ./rootfs }
    steps:
      - run: |
          echo "${sha(SECRET)}  /run/secrets/token" | sha256sum -c -s
          echo "${sha(ENV_SECRET)}  /run/secrets/envtok" | sha256sum -c -s
          cp /run/secrets/token /tmp/copy && rm /tmp/copy
          echo "used a secret of $(wc -c < /run/secrets/token) bytes" > /used
        secrets:
          - { id: token, src: ./secret.txt }
          - { id: envtok, env: DIMG_TEST_TOKEN }
      - run: "! (printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 ${port} > /reply) && echo offline > /net"
      - run: "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 127.0.0.1 ${port} > /fetched && grep -q reachable /fetched"
        network: host
    repository: sec/app
    tags: ["1"]
`,
  );
  const opts: CliOptions = { root: join(dir, 'store'), cwd: dir, env: { SOURCE_DATE_EPOCH: '0' }, timeoutMs: 180_000 };
  // The file secret from the spec's src, the other from the host environment (written to a temp file).
  const built = await dimg(['build', 'images.yaml'], { ...opts, env: { ...opts.env, DIMG_TEST_TOKEN: ENV_SECRET } });
  assert.equal(built.code, 0, `build failed (the network-less RUN may have reached the host, or the secret was missing):\n${built.stderr}\n${built.stdout}`);
  assert.equal(hits, 1, 'only the network: host step reached the host server');

  const outputs: string[] = [built.stdout, built.stderr];
  for (const args of [['image', 'history', '--no-trunc', 'sec/app:1'], ['image', 'inspect', 'sec/app:1']]) {
    const r = await dimg(args, opts);
    assert.equal(r.code, 0, r.stderr);
    outputs.push(r.stdout, r.stderr);
  }
  assertNoLeak(outputs, [SECRET, ENV_SECRET], 'build output, history and inspect');
  // Every blob in the store (layers decompressed), and the saved archive.
  const blobsDir = join(dir, 'store', 'oci', 'blobs', 'sha256');
  let scanned = 0;
  for (const name of readdirSync(blobsDir)) {
    let data = readFileSync(join(blobsDir, name));
    if (data[0] === 0x1f && data[1] === 0x8b) data = gunzipSync(data);
    scanned += data.length;
    for (const s of [SECRET, ENV_SECRET]) assert.ok(!data.includes(s), `blob ${name} contains a build secret`);
  }
  const archive = join(dir, 'app.tar');
  assert.equal((await dimg(['image', 'save', '-o', archive, 'sec/app:1'], opts)).code, 0);
  const tar = readFileSync(archive);
  for (const s of [SECRET, ENV_SECRET]) assert.ok(!tar.includes(s), 'the saved archive contains a build secret');
  // Nor in the unpacked layer dirs or the build cache.
  const grep = (d: string): string[] => {
    const hitsFound: string[] = [];
    const walk = (p: string) => {
      for (const e of readdirSync(p, { withFileTypes: true })) {
        const q = join(p, e.name);
        if (e.isDirectory()) walk(q);
        else if (e.isFile()) {
          const b = readFileSync(q);
          if (b.includes(SECRET) || b.includes(ENV_SECRET)) hitsFound.push(q);
        }
      }
    };
    walk(d);
    return hitsFound;
  };
  assert.deepEqual(grep(join(dir, 'store', 'overlay')), [], 'unpacked layers');
  assert.deepEqual(grep(join(dir, 'store', 'cache')), [], 'build cache');
  console.log(`# build secrets: ${scanned} bytes of blobs, the archive, the overlay dirs and the cache scanned: 0 copies; RUN without network: host reached the host 0 times, with it 1 time`);
});
