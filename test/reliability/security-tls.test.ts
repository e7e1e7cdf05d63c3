/**
 * TLS verification is on by default: against the real registry serving HTTPS with a certificate from
 * a private CA, dimg refuses (REGISTRY_TLS, naming the registry, hinting at --ca-file) until the CA is
 * given with `ca:` in the spec or `--ca-file` on the command line. A certificate for another name,
 * or from an unrelated CA, is refused. `insecure: true` / `--insecure` behave as Docker's
 * insecure-registries: HTTPS without verification when the registry speaks TLS (no CA needed), plain
 * HTTP when it does not, decided once per registry and run; without it the private CA is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dimg, dimgOk, type CliOptions } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { startRegistry } from '../support/registry.js';
import { startTlsRegistry } from '../support/tls-registry.js';
import { tempDir } from '../support/tmp.js';

function spec(host: string, registryExtra: string): string {
  return `version: 1
project: tls
registries:
  secure: { url: ${host}${registryExtra} }
images:
  app:
    from: { rootfs: ./rootfs }
    repository: tls/app
    tags: ["1"]
    push: [secure]
`;
}

test('TLS: a private-CA registry is refused by default and accepted with ca: or --ca-file', async (t) => {
  const reg = await startTlsRegistry();
  t.after(() => reg.stop());
  const dir = tempDir(t);
  makeBusyboxRootfs(join(dir, 'rootfs'));
  const env = { ...reg.env, SOURCE_DATE_EPOCH: '0' };
  delete (env as Record<string, string | undefined>).NODE_TLS_REJECT_UNAUTHORIZED;
  const opts: CliOptions = { root: join(dir, 'store'), cwd: dir, env, timeoutMs: 120_000 };
  const refused = (r: { code: number | null; stderr: string }, what: string, host = reg.host) => {
    assert.equal(r.code, 1, `${what}: expected a refusal:\n${r.stderr}`);
    assert.match(r.stderr, /^error: .*(TLS|certificate)/im, what);
    assert.match(r.stderr, new RegExp(host.replace(/[.]/g, '\\.')), `${what}: the error names the registry`);
    assert.match(r.stderr, /^hint: .*(--ca-file|ca:|CA)/m, what);
    assert.doesNotMatch(r.stderr, /^\s+at .+:\d+:\d+/m, `${what}: no stack trace`);
  };

  // No CA anywhere: plan and apply are refused before anything is sent.
  writeFileSync(join(dir, 'images.yaml'), spec(reg.host, ''));
  refused(await dimg(['apply', '--progress', 'plain'], opts), 'apply without a CA');
  refused(await dimg(['image', 'tags', `${reg.host}/tls/app`], opts), 'image tags without a CA');

  // The CA in the spec: accepted.
  writeFileSync(join(dir, 'images.yaml'), spec(reg.host, ', ca: ./ca.pem'));
  writeFileSync(join(dir, 'ca.pem'), (await import('node:fs')).readFileSync(reg.caFile));
  const applied = await dimg(['apply', '--progress', 'plain'], opts);
  assert.equal(applied.code, 0, `apply with ca: failed:\n${applied.stderr}`);
  const plan = await dimg(['plan', '--detailed-exitcode'], opts);
  assert.equal(plan.code, 0, plan.stdout + plan.stderr);

  // The CA on the command line: accepted; the wrong CA (a fresh one): refused.
  const tags = await dimg(['image', 'tags', '--ca-file', reg.caFile, `${reg.host}/tls/app`], opts);
  assert.equal(tags.code, 0, tags.stderr);
  assert.match(tags.stdout, /^1$/m);
  const other = tempDir(t);
  const { makeCertificates } = await import('../support/tls-registry.js');
  const wrong = makeCertificates(other, ['elsewhere.dimg.test']);
  refused(await dimg(['image', 'tags', '--ca-file', wrong.ca, `${reg.host}/tls/app`], opts), 'image tags with an unrelated CA');

  // The right CA, but a name the certificate does not carry (same server, reached as another name).
  const alias = reg.host.replace('registry.dimg.test', 'alias.dimg.test');
  refused(await dimg(['image', 'tags', '--ca-file', reg.caFile, `${alias}/tls/app`], opts), 'image tags under a name the certificate lacks', alias);
});

/** The `debug:` lines in which dimg says how it decided an insecure registry's scheme. */
function schemeLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^debug: registry .*(speaks TLS|does not speak TLS)/.test(l));
}

test('TLS: insecure means HTTPS without verification when the registry speaks TLS, plain HTTP when it does not, probed once per run', async (t) => {
  const reg = await startTlsRegistry();
  t.after(() => reg.stop());
  const plainReg = await startRegistry();
  t.after(() => plainReg.stop());
  // A plain-HTTP registry under a name that is not loopback to dimg (dns-preload resolves it to
  // 127.0.0.1), so its scheme is really probed rather than taken as loopback HTTP.
  const plain = plainReg.host.replace('127.0.0.1', 'plain.dimg.test');
  const dir = tempDir(t);
  makeBusyboxRootfs(join(dir, 'rootfs'));
  const env = { ...reg.env, SOURCE_DATE_EPOCH: '0', DIMG_DEBUG: '1' };
  delete (env as Record<string, string | undefined>).NODE_TLS_REJECT_UNAUTHORIZED;
  const opts: CliOptions = { root: join(dir, 'store'), cwd: dir, env, timeoutMs: 120_000 };
  const okRun = (args: string[], o: CliOptions = opts) => dimgOk(args, o);

  // The spec's insecure: true against the private-CA HTTPS registry, no CA anywhere: apply pushes
  // over HTTPS, the plan is clean, and the scheme was decided by one probe in each run.
  writeFileSync(join(dir, 'images.yaml'), spec(reg.host, ', insecure: true'));
  const applied = await okRun(['apply', '--progress', 'plain']);
  assert.deepEqual(schemeLines(applied.stderr), [`debug: registry ${reg.host}: speaks TLS; HTTPS without certificate verification (insecure)`]);
  const plan = await dimg(['plan', '--detailed-exitcode'], opts);
  assert.equal(plan.code, 0, plan.stdout + plan.stderr);
  assert.equal(schemeLines(plan.stderr).length, 1, 'one probe per run');
  // The registry itself (reached with the CA, over HTTPS) has the image.
  const tagsWithCa = await okRun(['image', 'tags', '--ca-file', reg.caFile, `${reg.host}/tls/app`]);
  assert.match(tagsWithCa.stdout, /^1$/m);
  assert.deepEqual(schemeLines(tagsWithCa.stderr), [], 'a registry not marked insecure is not probed');

  // --insecure on the command line, no CA: pull into a fresh store, push a new tag.
  const fresh: CliOptions = { ...opts, root: join(dir, 'store2') };
  const pulled = await okRun(['image', 'pull', '--insecure', `${reg.host}/tls/app:1`], fresh);
  assert.equal(schemeLines(pulled.stderr).length, 1, pulled.stderr);
  await okRun(['image', 'tag', `${reg.host}/tls/app:1`, `${reg.host}/tls/app:2`], fresh);
  await okRun(['image', 'push', '--insecure', `${reg.host}/tls/app:2`], fresh);
  const tags = await okRun(['image', 'tags', '--insecure', `${reg.host}/tls/app`], fresh);
  assert.deepEqual(tags.stdout.trim().split('\n').sort(), ['1', '2', 'dimg-state-tls'], 'the apply above also wrote its ownership record');

  // Without insecure the private CA is still refused, in the same store that used --insecure before.
  const refusedRun = await dimg(['image', 'pull', `${reg.host}/tls/app:2`], fresh);
  assert.equal(refusedRun.code, 1, refusedRun.stdout);
  assert.match(refusedRun.stderr, /^error: .*TLS verification failed/m);
  assert.match(refusedRun.stderr, /^hint: .*--ca-file/m);

  // insecure against a registry that speaks plain HTTP only: probed, then plain HTTP; spec and CLI.
  writeFileSync(join(dir, 'images.yaml'), spec(plain, ', insecure: true'));
  const appliedPlain = await okRun(['apply', '--progress', 'plain']);
  assert.deepEqual(schemeLines(appliedPlain.stderr), [`debug: registry ${plain}: does not speak TLS; plain HTTP (insecure)`]);
  const pulledPlain = await okRun(['image', 'pull', '--insecure', `${plain}/tls/app:1`], fresh);
  assert.equal(schemeLines(pulledPlain.stderr).length, 1);
  // Not marked insecure, the same plain registry is refused (HTTPS is expected of a non-loopback name).
  const plainRefused = await dimg(['image', 'tags', `${plain}/tls/app`], fresh);
  assert.equal(plainRefused.code, 1, plainRefused.stdout);
  assert.match(plainRefused.stderr, new RegExp(`^error: registry ${plain.replace(/[.]/g, '\\.')}`, 'm'));
  assert.match(plainRefused.stderr, /does not speak TLS/);
  assert.match(plainRefused.stderr, /^hint: .*--insecure/m);

  // The same HTTPS registry addressed by its loopback IP (dimg's default for loopback is plain HTTP):
  // refused with the registry's own 400 and a hint to mark it insecure; marked insecure, it works.
  const loop = `127.0.0.1:${reg.host.split(':')[1]}`;
  const loopPlain = await dimg(['image', 'tags', `${loop}/tls/app`], fresh);
  assert.equal(loopPlain.code, 1, loopPlain.stdout);
  assert.match(loopPlain.stderr, /^error: .*HTTP 400: Client sent an HTTP request to an HTTPS server/m);
  assert.match(loopPlain.stderr, /^hint: .*mark it insecure/m);
  const loopInsecure = await okRun(['image', 'tags', '--insecure', `${loop}/tls/app`], fresh);
  assert.deepEqual(loopInsecure.stdout.trim().split('\n').sort(), ['1', '2', 'dimg-state-tls']);
  assert.deepEqual(schemeLines(loopInsecure.stderr), [`debug: registry ${loop}: speaks TLS; HTTPS without certificate verification (insecure)`]);
  console.log(`# TLS insecure: HTTPS registry (private CA, none given) apply/pull/push ok; plain-HTTP registry ok; without insecure refused: ${refusedRun.stderr.trim().split('\n')[0]}`);
});
