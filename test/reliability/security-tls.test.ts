/**
 * TLS verification is on by default: against the real registry serving HTTPS with a certificate from
 * a private CA, dimg refuses (REGISTRY_TLS, naming the registry, hinting at --ca-file) until the CA is
 * given with `ca:` in the spec or `--ca-file` on the command line. A certificate for another name,
 * or from an unrelated CA, is refused. `insecure: true` (plain HTTP in dimg) fails clearly here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dimg, type CliOptions } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
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

test('TLS: a private-CA registry is refused by default and accepted with ca: or --ca-file; insecure: true never skips verification silently', async (t) => {
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

  // insecure: true in dimg means plain HTTP (Docker's insecure-registries also tries HTTPS without
  // verification first). Against an HTTPS-only registry it must still never verify-skip silently:
  // it fails with a clear error naming the registry. (Recorded in docs/reliability.md as an open item.)
  writeFileSync(join(dir, 'images.yaml'), spec(reg.host, ', insecure: true'));
  const insecure = await dimg(['plan', '--detailed-exitcode'], opts);
  console.log(`# TLS insecure: true against an HTTPS-only registry: exit ${insecure.code}${insecure.code === 0 ? '' : `: ${insecure.stderr.trim().split('\n')[0]}`}`);
  assert.equal(insecure.code, 1, insecure.stdout);
  assert.match(insecure.stderr, new RegExp(`^error: registry ${reg.host.replace(/[.]/g, '\\.')}.*HTTPS`, 'm'));
});
