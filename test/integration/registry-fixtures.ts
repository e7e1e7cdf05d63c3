/**
 * Fixtures for the registry tests: small valid images (config + gzip layers) built in memory, pushed
 * with dimg's client, and a helper to assert that no secret leaks into captured text.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { sha256, type Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { canonicalBytes } from '../../src/oci/canonical-json.js';
import type { Descriptor } from '../../src/oci/types.js';
import type { RemoteRepository } from '../../src/registry/index.js';

/** A blob held in memory with its descriptor. */
export interface TestBlob {
  desc: Descriptor;
  bytes: Buffer;
}

/** A test image: manifest bytes plus its blobs. */
export interface TestImage {
  manifest: Buffer;
  digest: Digest;
  mediaType: string;
  blobs: TestBlob[];
  config: TestBlob;
  layers: TestBlob[];
}

/** Random bytes as a blob descriptor. */
export function randomBlob(size: number, mediaType = 'application/octet-stream'): TestBlob {
  const bytes = randomBytes(size);
  return { bytes, desc: { mediaType, digest: sha256(bytes), size } };
}

/** An image for `os/arch` with `layerCount` gzip layers of random content. */
export function makeImage(opts: { arch?: string; layerCount?: number; layerSize?: number; label?: string } = {}): TestImage {
  const layers: TestBlob[] = [];
  const diffIds: Digest[] = [];
  for (let i = 0; i < (opts.layerCount ?? 2); i++) {
    const raw = randomBytes(opts.layerSize ?? 2048);
    diffIds.push(sha256(raw));
    const gz = gzipSync(raw);
    layers.push({ bytes: gz, desc: { mediaType: MediaType.ociLayerGzip, digest: sha256(gz), size: gz.length } });
  }
  const config = canonicalBytes({
    architecture: opts.arch ?? 'amd64',
    os: 'linux',
    config: { Labels: { test: opts.label ?? randomBytes(4).toString('hex') } },
    rootfs: { type: 'layers', diff_ids: diffIds },
  });
  const cfg: TestBlob = { bytes: config, desc: { mediaType: MediaType.ociConfig, digest: sha256(config), size: config.length } };
  const manifest = canonicalBytes({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: cfg.desc, layers: layers.map((l) => l.desc) });
  return { manifest, digest: sha256(manifest), mediaType: MediaType.ociManifest, blobs: [cfg, ...layers], config: cfg, layers };
}

/** Pushes `img` (blobs, then manifest under `tag`) with dimg's client. */
export async function pushImage(repo: RemoteRepository, img: TestImage, tag: string): Promise<void> {
  for (const b of img.blobs) await repo.uploadBlob(b.desc.digest, b.desc.size, () => Readable.from([b.bytes]));
  await repo.putManifest(tag, img.manifest, img.mediaType);
}

/** An index over `images` with their platforms. */
export function makeIndex(images: { img: TestImage; arch: string }[]): { bytes: Buffer; digest: Digest } {
  const bytes = canonicalBytes({
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: images.map(({ img, arch }) => ({ mediaType: img.mediaType, digest: img.digest, size: img.manifest.length, platform: { os: 'linux', architecture: arch } })),
  });
  return { bytes, digest: sha256(bytes) };
}

/** Reads a stream fully. */
export async function readAllStream(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of s as AsyncIterable<Buffer>) parts.push(b);
  return Buffer.concat(parts);
}

/** Asserts that none of `secrets` (nor the base64 of `user:pass` pairs) occurs in any of `texts`. */
export function assertNoSecrets(texts: string[], secrets: string[]): void {
  const all = texts.join('\n');
  for (const s of secrets) {
    if (!s) continue;
    assert.ok(!all.includes(s), `a secret leaked into captured output (${s.length} chars)`);
  }
}

/** The base64 `user:pass` form a Basic header carries. */
export function basicForm(user: string, pass: string): string {
  return Buffer.from(`${user}:${pass}`).toString('base64');
}
