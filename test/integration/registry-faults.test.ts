import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { isDimgError } from '../../src/errors.js';
import { sha256 } from '../../src/oci/digest.js';
import { parseReference } from '../../src/oci/reference.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/index.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { makeImage, pushImage, randomBlob, readAllStream } from './registry-fixtures.js';

const FAST: RegistryClientOptions = { retry: { attempts: 5, baseDelayMs: 20, maxDelayMs: 200, maxTotalWaitMs: 10_000 } };

async function setup(t: { after(fn: () => unknown): void }, opts: RegistryClientOptions = {}): Promise<{ reg: TestRegistry; proxy: FaultProxy; client: RegistryClient; logs: string[] }> {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const logs: string[] = [];
  const client = new RegistryClient({ ...FAST, ...opts, log: (l) => logs.push(l) });
  t.after(() => client.close());
  return { reg, proxy, client, logs };
}

const isManifest = (_m: string, p: string) => p.includes('/manifests/');
const isBlobGet = (m: string, p: string) => m === 'GET' && p.includes('/blobs/sha256:');

test('5xx answers and 429 with Retry-After are retried with backoff', async (t) => {
  const { proxy, client, logs } = await setup(t);
  const repo = client.repository({ domain: proxy.host, path: 'faults/app' });
  const img = makeImage();
  proxy.inject({ kind: 'status', status: 503, count: 2, match: (m) => m === 'PUT' });
  proxy.inject({ kind: 'status', status: 500, count: 1, match: (m) => m === 'POST' });
  await pushImage(repo, img, 'v1');
  assert.equal(proxy.fired.status, 3);

  proxy.inject({ kind: 'status', status: 502, count: 2, match: isManifest });
  assert.equal((await repo.getManifest('v1')).digest, img.digest);

  proxy.inject({ kind: 'ratelimit', retryAfterSeconds: 1, count: 1, match: isManifest });
  const t0 = Date.now();
  assert.equal((await repo.headManifest('v1'))?.digest, img.digest);
  assert.ok(Date.now() - t0 >= 950, 'Retry-After was honoured');
  assert.equal(proxy.fired.ratelimit, 1);
  assert.ok(logs.some((l) => /after HTTP 429/.test(l)), logs.join('\n'));

  // A registry that keeps failing: a clear error after the attempts, naming the registry.
  proxy.inject({ kind: 'status', status: 503, count: 100, match: isManifest });
  await assert.rejects(repo.getManifest('v1'), (e: unknown) => isDimgError(e, 'REGISTRY_UNAVAILABLE') && e.message.includes(proxy.host) && e.message.includes('faults/app'));
  // A Retry-After beyond the total wait budget is not waited for.
  proxy.reset();
  proxy.inject({ kind: 'ratelimit', retryAfterSeconds: 3600, count: 1 });
  const t1 = Date.now();
  await assert.rejects(repo.listTags(), (e: unknown) => isDimgError(e, 'REGISTRY_TOOMANYREQUESTS'));
  assert.ok(Date.now() - t1 < 5000);
});

test('dropped connections: manifests re-fetched, blob downloads resumed, uploads restarted from a fresh source', async (t) => {
  const { proxy, client } = await setup(t, { monolithicMax: 64 * 1024, chunkSize: 256 * 1024, idleTimeoutMs: 1000 });
  const repo = client.repository({ domain: proxy.host, path: 'drops/app' });
  const img = makeImage({ layerSize: 200_000 });
  await pushImage(repo, img, 'v1');

  proxy.inject({ kind: 'drop-response', count: 1, match: (m, p) => m === 'GET' && p.includes('/manifests/') });
  assert.equal((await repo.getManifest('v1')).digest, img.digest);
  assert.equal(proxy.fired['drop-response'], 1);

  const big = randomBlob(1_500_000);
  await repo.uploadBlob(big.desc.digest, big.desc.size, () => Readable.from([big.bytes]));
  proxy.reset();
  proxy.inject({ kind: 'drop-response', count: 2, match: isBlobGet });
  const got = await readAllStream(await repo.getBlob(big.desc.digest, big.desc.size));
  assert.equal(sha256(got), big.desc.digest);
  assert.equal(proxy.fired['drop-response'], 2);
  assert.equal(proxy.counts.GET, 3, 'two resumptions');

  // An upload whose PATCH connection drops mid-body restarts with a freshly opened source.
  const up = randomBlob(1_000_000);
  let opens = 0;
  proxy.reset();
  proxy.inject({ kind: 'drop-request', count: 1, match: (m) => m === 'PATCH' });
  assert.equal(await repo.uploadBlob(up.desc.digest, up.desc.size, () => (opens++, Readable.from([up.bytes]))), 'uploaded');
  assert.equal(opens, 2);
  assert.equal(proxy.fired['drop-request'], 1);
  assert.equal(sha256(await readAllStream(await repo.getBlob(up.desc.digest, up.desc.size))), up.desc.digest);

  // A stalled answer counts as a connection failure and is retried.
  proxy.inject({ kind: 'stall', ms: 3000, count: 1, match: (m) => m === 'HEAD' });
  assert.equal(await repo.blobExists(up.desc.digest), true);
  assert.equal(proxy.fired.stall, 1);
});

test('a copy survives faults at a steady rate and keeps digests', async (t) => {
  const { reg, proxy, client } = await setup(t, { monolithicMax: 32 * 1024, chunkSize: 64 * 1024 });
  const direct = new RegistryClient();
  t.after(() => direct.close());
  const src = direct.repository({ domain: reg.host, path: 'rate/src' });
  const img = makeImage({ layerCount: 4, layerSize: 150_000 });
  await pushImage(src, img, 'v1');
  proxy.inject({ kind: 'status', status: 503, count: 3 });
  proxy.inject({ kind: 'drop-response', count: 1, match: isBlobGet });
  proxy.inject({ kind: 'status', status: 503, rate: 0.15 });
  proxy.inject({ kind: 'drop-response', rate: 0.05, match: (m) => m === 'GET' });
  // Reads go through the faulty proxy; the destination is named differently, so blobs really travel.
  const r = await client.copyImage(parseReference(`${proxy.host}/rate/src:v1`), parseReference(`${reg.host}/rate/dst:v1`));
  assert.equal(r.digest, img.digest);
  assert.ok((proxy.fired.status ?? 0) >= 3 && (proxy.fired['drop-response'] ?? 0) >= 1, JSON.stringify(proxy.fired));
  proxy.reset();
  assert.equal((await direct.repository({ domain: reg.host, path: 'rate/dst' }).getManifest('v1')).digest, img.digest);
  // A re-copy of an image already there: HEADs only, the manifest PUT aside.
  await client.copyImage(parseReference(`${reg.host}/rate/src:v1`), parseReference(`${proxy.host}/rate/dst:v1`));
  assert.equal(proxy.writes(), 1, JSON.stringify(proxy.counts));
});

test('upload of an already-present image: no uploads, only checks', async (t) => {
  const { proxy, client } = await setup(t);
  const repo = client.repository({ domain: proxy.host, path: 'present/app' });
  const img = makeImage({ layerCount: 3 });
  await pushImage(repo, img, 'v1');
  proxy.reset();
  await pushImage(repo, img, 'v1');
  assert.equal(proxy.counts.HEAD, 4);
  assert.equal(proxy.counts.PUT, 1);
  assert.equal(proxy.writes(), 1);
});
