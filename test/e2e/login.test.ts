import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RegistryClient } from '../../src/registry/index.js';
import { dimg, type CliResult } from '../support/cli.js';
import { startRegistry } from '../support/registry.js';
import { startTokenProxy } from '../support/token-server.js';
import { installCredHelper } from '../support/cred-helper.js';
import { tempDir } from '../support/tmp.js';
import { assertNoSecrets, basicForm, makeImage, pushImage } from '../integration/registry-fixtures.js';

const USER = 'cliuser';
const PASS = 'cli-Pa55word-never-printed';

function outputs(rs: CliResult[]): string[] {
  return rs.flatMap((r) => [r.stdout, r.stderr]);
}

test('login/logout with config.json: verified, stored with the unencrypted warning, used by later commands, removed', async (t) => {
  const reg = await startRegistry({ auth: { username: USER, password: PASS } });
  t.after(() => reg.stop());
  const cfg = tempDir(t);
  const env = { DOCKER_CONFIG: cfg };
  const runs: CliResult[] = [];
  const run = async (args: string[], input?: string) => {
    const r = await dimg(args, { env, input });
    runs.push(r);
    return r;
  };

  // Wrong password: refused, nothing stored.
  const bad = await run(['login', reg.host, '-u', USER, '--password-stdin'], 'wrong-pass-123\n');
  assert.equal(bad.code, 1, bad.stderr);
  assert.match(bad.stderr, /error: login to 127\.0\.0\.1:\d+ failed: the registry rejected the username or password.*\nhint: /);
  assert.equal(existsSync(join(cfg, 'config.json')), false);

  const ok = await run(['login', reg.host, '-u', USER, '--password-stdin'], `${PASS}\n`);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /Login Succeeded/);
  assert.ok(ok.stderr.includes(`WARNING! Your credentials are stored unencrypted in '${join(cfg, 'config.json')}'.`), ok.stderr);
  const stored = JSON.parse(readFileSync(join(cfg, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
  assert.equal(stored.auths[reg.host]?.auth, basicForm(USER, PASS));
  assert.equal(statSync(join(cfg, 'config.json')).mode & 0o777, 0o600);

  // The stored credentials serve later commands.
  const client = new RegistryClient({ credentials: { explicit: { [reg.host]: { username: USER, password: PASS } } } });
  t.after(() => client.close());
  await pushImage(client.repository({ domain: reg.host, path: 'cli/app' }), makeImage(), 'v1');
  const tags = await run(['image', 'tags', `${reg.host}/cli/app`]);
  assert.equal(tags.code, 0, tags.stderr);
  assert.equal(tags.stdout, 'v1\n');

  // -p works but warns.
  const p = await run(['login', reg.host, '-u', USER, '-p', PASS]);
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stderr, /WARNING! Using --password via the CLI is insecure\. Use --password-stdin\./);

  const out = await run(['logout', reg.host]);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, new RegExp(`Removing login credentials for ${reg.host.replace(/\./g, '\\.')}`));
  const after = JSON.parse(readFileSync(join(cfg, 'config.json'), 'utf8')) as { auths: Record<string, unknown> };
  assert.equal(after.auths[reg.host], undefined);
  const denied = await run(['image', 'tags', `${reg.host}/cli/app`]);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /error: registry .*repository cli\/app.*authentication required/);
  assert.match(denied.stderr, /hint: .*dimg login/);
  const again = await run(['logout', reg.host]);
  assert.match(again.stdout, /Not logged in/);

  const noUser = await run(['login', reg.host, '--password-stdin'], PASS);
  assert.equal(noUser.code, 1);
  assertNoSecrets(outputs(runs), [PASS, 'wrong-pass-123', basicForm(USER, PASS), basicForm(USER, 'wrong-pass-123')]);
});

test('login through a Bearer token registry into a credential helper (credsStore), then copy and logout', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const tp = await startTokenProxy({ upstream: reg.url, users: { [USER]: PASS } });
  t.after(() => tp.stop());
  const helperDir = tempDir(t);
  const helper = installCredHelper(helperDir);
  const cfg = tempDir(t);
  writeFileSync(join(cfg, 'config.json'), JSON.stringify({ credsStore: 'dimgtest' }));
  const env = { DOCKER_CONFIG: cfg, PATH: `${helperDir}:${process.env.PATH ?? ''}` };
  const runs: CliResult[] = [];
  const run = async (args: string[], input?: string) => {
    const r = await dimg(args, { env, input });
    runs.push(r);
    return r;
  };

  const ok = await run(['login', tp.host, '-u', USER, '--password-stdin'], PASS);
  assert.equal(ok.code, 0, ok.stderr);
  assert.doesNotMatch(ok.stderr, /unencrypted/);
  assert.deepEqual(helper.get(tp.host), { ServerURL: tp.host, Username: USER, Secret: PASS });
  assert.ok(!readFileSync(join(cfg, 'config.json'), 'utf8').includes(basicForm(USER, PASS)));

  const client = new RegistryClient({ credentials: { explicit: { [tp.host]: { username: USER, password: PASS } } } });
  t.after(() => client.close());
  const img = makeImage();
  await pushImage(client.repository({ domain: tp.host, path: 'tok/src' }), img, 'v1');

  const cp = await run(['image', 'copy', `docker://${tp.host}/tok/src:v1`, `${tp.host}/tok/dst:v2`]);
  assert.equal(cp.code, 0, cp.stderr);
  assert.ok(cp.stdout.includes(`tok/dst:v2: digest: ${img.digest}`), cp.stdout);
  assert.match(cp.stderr, /blob [0-9a-f]{12}: mounted/);
  const q = await run(['image', 'copy', '-q', `${tp.host}/tok/src:v1`, `${tp.host}/tok/dst:v3`]);
  assert.equal(q.code, 0, q.stderr);
  assert.equal(q.stderr, '');
  const tags = await run(['image', 'tags', `${tp.host}/tok/dst`]);
  assert.equal(tags.stdout, 'v2\nv3\n');

  const out = await run(['logout', tp.host]);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(helper.get(tp.host), undefined);
  assert.ok(helper.calls().includes('erase'));
  const denied = await run(['image', 'tags', `${tp.host}/tok/dst`]);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /REGISTRY|error: registry/);
  assertNoSecrets(outputs(runs), [PASS, basicForm(USER, PASS), ...tp.issued]);
});
