import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDimgError, type DimgError } from '../../src/errors.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseReference } from '../../src/oci/reference.js';
import { RegistryClient, lookupCredential, parseChallenges } from '../../src/registry/index.js';
import { startRegistry } from '../support/registry.js';
import { startTokenProxy } from '../support/token-server.js';
import { installCredHelper } from '../support/cred-helper.js';
import { tempDir } from '../support/tmp.js';
import { Readable } from 'node:stream';
import { assertNoSecrets, basicForm, makeImage, makeIndex, pushImage, randomBlob } from './registry-fixtures.js';

const USER = 'dimguser';
const PASS = 'S3cret-pa55word-for-tests';

function errText(e: unknown): string {
  const d = e as DimgError;
  return `${d.code} ${d.message} ${d.hint} ${(e as Error).stack ?? ''}`;
}

test('challenge parsing: Bearer with commas inside quotes, Basic, several challenges', () => {
  const cs = parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push",error="insufficient_scope", Basic realm="x"');
  assert.deepEqual(cs, [
    { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push', error: 'insufficient_scope' } },
    { scheme: 'basic', params: { realm: 'x' } },
  ]);
});

test('Basic auth against an htpasswd registry: explicit credentials, config.json auths, refusals without leaks', async (t) => {
  const reg = await startRegistry({ auth: { username: USER, password: PASS } });
  t.after(() => reg.stop());
  const logs: string[] = [];
  const errors: string[] = [];
  const authed = new RegistryClient({ credentials: { explicit: { [reg.host]: { username: USER, password: PASS } } }, log: (l) => logs.push(l) });
  t.after(() => authed.close());
  const repo = authed.repository({ domain: reg.host, path: 'basic/app' });
  const img = makeImage();
  await pushImage(repo, img, 'v1');
  assert.equal((await repo.getManifest('v1')).digest, img.digest);

  // From config.json in DOCKER_CONFIG (base64 auth), as docker login writes it.
  const cfgDir = tempDir(t);
  writeFileSync(join(cfgDir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: basicForm(USER, PASS) } } }));
  const fromFile = new RegistryClient({ credentials: { env: { ...process.env, DOCKER_CONFIG: cfgDir } } });
  t.after(() => fromFile.close());
  assert.deepEqual(await fromFile.repository({ domain: reg.host, path: 'basic/app' }).listTags(), ['v1']);

  // Anonymous: refused with UNAUTHORIZED, naming registry and repository, with a hint to log in.
  const anon = new RegistryClient({ credentials: { env: { ...process.env, DOCKER_CONFIG: tempDir(t) } } });
  t.after(() => anon.close());
  await assert.rejects(anon.repository({ domain: reg.host, path: 'basic/app' }).getManifest('v1'), (e: unknown) => {
    errors.push(errText(e));
    return isDimgError(e, 'REGISTRY_UNAUTHORIZED') && e.message.includes(reg.host) && e.message.includes('basic/app') && /login/.test(e.hint);
  });
  // A wrong password: refused, and neither it nor the right one appears anywhere.
  const wrong = new RegistryClient({ credentials: { explicit: { [reg.host]: { username: USER, password: 'wrong-password-xyz' } } }, log: (l) => logs.push(l) });
  t.after(() => wrong.close());
  await assert.rejects(wrong.repository({ domain: reg.host, path: 'basic/app' }).listTags(), (e: unknown) => {
    errors.push(errText(e));
    return isDimgError(e, 'REGISTRY_UNAUTHORIZED');
  });
  await assert.rejects(wrong.verifyCredential(reg.host, { username: USER, password: 'wrong-password-xyz' }), (e: unknown) => {
    errors.push(errText(e));
    return isDimgError(e, 'REGISTRY_UNAUTHORIZED');
  });
  await authed.verifyCredential(reg.host, { username: USER, password: PASS });
  assertNoSecrets([...logs, ...errors], [PASS, 'wrong-password-xyz', basicForm(USER, PASS), basicForm(USER, 'wrong-password-xyz')]);
});

test('Bearer token flow through the token proxy: scopes, mount scope, refresh after revocation, no token leaks', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const tp = await startTokenProxy({ upstream: reg.url, users: { [USER]: PASS } });
  t.after(() => tp.stop());
  const logs: string[] = [];
  const errors: string[] = [];
  const cfgDir = tempDir(t);
  writeFileSync(join(cfgDir, 'config.json'), JSON.stringify({ auths: { [`http://${tp.host}/v1/`]: { username: USER, password: PASS } } }));
  const client = new RegistryClient({ credentials: { env: { ...process.env, DOCKER_CONFIG: cfgDir } }, log: (l) => logs.push(l) });
  t.after(() => client.close());
  const repo = client.repository({ domain: tp.host, path: 'tok/app' });
  const img = makeImage();
  await pushImage(repo, img, 'v1');
  assert.equal((await repo.getManifest('v1')).digest, img.digest);
  assert.ok(tp.tokenRequests.some((r) => r.scopes.includes('repository:tok/app:pull,push')), JSON.stringify(tp.tokenRequests));
  assert.ok(tp.tokenRequests.some((r) => r.scopes.includes('repository:tok/app:pull')));
  const issuedBefore = tp.issued.length;
  await repo.getManifest('v1');
  assert.equal(tp.issued.length, issuedBefore, 'a cached token is reused');

  // Mount needs pull on the source repository too; the proxy enforces it.
  const other = client.repository({ domain: tp.host, path: 'tok/other' });
  assert.equal(await other.uploadBlob(img.config.desc.digest, img.config.desc.size, () => { throw new Error('mounted, not sent'); }, { mountFrom: ['tok/app'] }), 'mounted');
  assert.ok(tp.tokenRequests.some((r) => r.scopes.includes('repository:tok/app:pull') && r.scopes.includes('repository:tok/other:pull,push')));

  // Tokens revoked (expired) mid-run: the 401 is answered with a fresh token, transparently.
  tp.revokeAll();
  const challengesBefore = tp.challenges;
  assert.deepEqual(await repo.listTags(), ['v1']);
  assert.ok(tp.challenges > challengesBefore);

  // A token that dies in the middle of a streamed (chunked) upload: the upload restarts with a new token.
  const chunky = new RegistryClient({ credentials: { explicit: { [tp.host]: { username: USER, password: PASS } } }, monolithicMax: 1024, chunkSize: 4096, log: (l) => logs.push(l) });
  t.after(() => chunky.close());
  const blob = randomBlob(20_000);
  let opens = 0;
  const chunkRepo = chunky.repository({ domain: tp.host, path: 'tok/chunky' });
  const outcome = await chunkRepo.uploadBlob(blob.desc.digest, blob.desc.size, () => {
    if (opens++ === 0) tp.revokeAll();
    return Readable.from([blob.bytes]);
  });
  assert.equal(outcome, 'uploaded');
  assert.equal(opens, 2);
  assert.equal(await chunkRepo.blobExists(blob.desc.digest), true);

  // A whole-index copy within the token registry (mounts across repositories under Bearer).
  const arm = makeImage({ arch: 'arm64' });
  await pushImage(repo, arm, 'arm');
  const idx = makeIndex([{ img, arch: 'amd64' }, { img: arm, arch: 'arm64' }]);
  await repo.putManifest('multi', idx.bytes, MediaType.ociIndex);
  const r = await client.copyImage(parseReference(`${tp.host}/tok/app:multi`), parseReference(`${tp.host}/tok/copy:multi`), { allPlatforms: true });
  assert.equal(r.digest, idx.digest);

  // Wrong password at the token endpoint: UNAUTHORIZED naming the registry, and no secret leaks.
  const bad = new RegistryClient({ credentials: { explicit: { [tp.host]: { username: USER, password: 'not-the-password' } } }, log: (l) => logs.push(l) });
  t.after(() => bad.close());
  await assert.rejects(bad.repository({ domain: tp.host, path: 'tok/app' }).listTags(), (e: unknown) => {
    errors.push(errText(e));
    return isDimgError(e, 'REGISTRY_UNAUTHORIZED') && e.message.includes(tp.host);
  });
  // No credentials at all.
  const anon = new RegistryClient({ credentials: { env: { ...process.env, DOCKER_CONFIG: tempDir(t) } } });
  t.after(() => anon.close());
  await assert.rejects(anon.repository({ domain: tp.host, path: 'tok/app' }).listTags(), (e: unknown) => {
    errors.push(errText(e));
    return isDimgError(e, 'REGISTRY_UNAUTHORIZED');
  });
  assert.ok(tp.issued.length > 2);
  assertNoSecrets([...logs, ...errors], [PASS, 'not-the-password', basicForm(USER, PASS), ...tp.issued]);
});

test('credential helpers: credsStore and credHelpers via docker-credential-dimgtest on PATH', async (t) => {
  const reg = await startRegistry({ auth: { username: USER, password: PASS } });
  t.after(() => reg.stop());
  const helperDir = tempDir(t);
  const helper = installCredHelper(helperDir);
  helper.put(reg.host, USER, PASS);
  const cfgDir = tempDir(t);
  const env = { ...process.env, DOCKER_CONFIG: cfgDir, PATH: `${helperDir}:${process.env.PATH ?? ''}` };

  writeFileSync(join(cfgDir, 'config.json'), JSON.stringify({ credsStore: 'dimgtest' }));
  assert.deepEqual(await lookupCredential(reg.host, { env }), { username: USER, password: PASS });
  const client = new RegistryClient({ credentials: { env } });
  t.after(() => client.close());
  const img = makeImage();
  await pushImage(client.repository({ domain: reg.host, path: 'helper/app' }), img, 'v1');
  assert.ok(helper.calls().includes('get'));

  // credHelpers wins over auths for its host; an unknown host falls back to auths.
  writeFileSync(join(cfgDir, 'config.json'), JSON.stringify({ credHelpers: { [reg.host]: 'dimgtest' }, auths: { [reg.host]: { auth: basicForm(USER, 'stale') }, 'other.example': { auth: basicForm('o', 'p') } } }));
  assert.deepEqual(await lookupCredential(reg.host, { env }), { username: USER, password: PASS });
  assert.deepEqual(await lookupCredential('other.example', { env }), { username: 'o', password: 'p' });
  const client2 = new RegistryClient({ credentials: { env } });
  t.after(() => client2.close());
  assert.deepEqual(await client2.repository({ domain: reg.host, path: 'helper/app' }).listTags(), ['v1']);

  // An identity token from a helper (`<token>` username) is reported as such.
  helper.put('id.example', '<token>', 'identity-token-value');
  writeFileSync(join(cfgDir, 'config.json'), JSON.stringify({ credsStore: 'dimgtest' }));
  assert.deepEqual(await lookupCredential('id.example', { env }), { identityToken: 'identity-token-value' });
  assert.equal(await lookupCredential('nothing.example', { env }), undefined);

  // A helper that is configured but missing is an error naming it.
  writeFileSync(join(cfgDir, 'config.json'), JSON.stringify({ credsStore: 'nosuchhelper' }));
  await assert.rejects(lookupCredential(reg.host, { env }), (e: unknown) => isDimgError(e, 'CREDENTIAL_HELPER_MISSING') && e.message.includes('docker-credential-nosuchhelper'));
});

test('Docker Hub names map to the Hub API host and config key', async () => {
  const { apiHost, credentialKey, normaliseRegistry, registryBaseUrl } = await import('../../src/registry/index.js');
  assert.equal(apiHost('docker.io'), 'registry-1.docker.io');
  assert.equal(credentialKey('docker.io'), 'https://index.docker.io/v1/');
  assert.equal(normaliseRegistry('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(registryBaseUrl('docker.io'), 'https://registry-1.docker.io');
  assert.equal(registryBaseUrl('127.0.0.1:5000'), 'http://127.0.0.1:5000');
  assert.equal(registryBaseUrl('localhost:5000'), 'http://localhost:5000');
  assert.equal(registryBaseUrl('[::1]:5000'), 'http://[::1]:5000');
  assert.equal(registryBaseUrl('registry.example:5000'), 'https://registry.example:5000');
  assert.equal(registryBaseUrl('registry.example:5000', new Set(['registry.example:5000'])), 'http://registry.example:5000');
  const env = { ...process.env, DOCKER_CONFIG: tempDir() };
  writeFileSync(join(env.DOCKER_CONFIG, 'config.json'), JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: basicForm('hubuser', 'hubpass') } } }));
  assert.deepEqual(await lookupCredential('docker.io', { env }), { username: 'hubuser', password: 'hubpass' });
});
