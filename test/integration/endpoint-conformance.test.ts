/**
 * One conformance suite for every image endpoint (src/endpoint/types.ts), run alike against the
 * registry (the REAL docker-registry 2.8), the local store, an OCI layout directory and a Docker
 * archive, in the spirit of go-containerregistry's `validate` and containerd's content testsuite:
 * round trips keep digests (a multi-layer image, a two-platform index), re-puts are idempotent,
 * missing objects fail naming them, a sink that fails mid-way leaves its destination as it was, a blob
 * with the wrong content is refused, and a copy between every pair (4×4) keeps the manifest digest.
 * skopeo reads each destination independently.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { dockerArchiveSink, dockerArchiveSource } from '../../src/archive/endpoint.js';
import { registrySink, registrySource } from '../../src/endpoint/registry.js';
import { transfer } from '../../src/endpoint/transfer.js';
import type { ImageSink, ImageSource, ManifestBytes, TransferEvent } from '../../src/endpoint/types.js';
import { isDimgError } from '../../src/errors.js';
import { canonicalBytes } from '../../src/oci/canonical-json.js';
import { HashingStream, sha256, type Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from '../../src/oci/types.js';
import { RegistryClient } from '../../src/registry/index.js';
import { Store } from '../../src/store/store.js';
import { ociLayoutSink, ociLayoutSource } from '../../src/transfer/oci-layout.js';
import { storeSink, storeSource } from '../../src/transfer/store-sink.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { requireTool, run } from '../support/tools.js';
import { tempDir } from '../support/tmp.js';

const REPO = 'example.com/conf/img';

/** An in-memory image: blobs by digest and manifests by tag; the reference every endpoint is checked against. */
class Fixture {
  readonly blobs = new Map<Digest, Buffer>();
  readonly tags = new Map<string, ManifestBytes>();

  add(bytes: Buffer): Descriptor & { digest: Digest } {
    const digest = sha256(bytes);
    this.blobs.set(digest, bytes);
    return { mediaType: '', digest, size: bytes.length };
  }

  manifest(doc: object, mediaType: string): ManifestBytes {
    const bytes = canonicalBytes(doc);
    const m = { bytes, mediaType, digest: sha256(bytes) };
    this.blobs.set(m.digest, bytes);
    return m;
  }

  /**
   * A source serving this fixture; `corrupt` replaces a blob's bytes (same size, other content),
   * `breakAt` makes a blob's stream fail after its first half.
   */
  source(o: { corrupt?: Digest; breakAt?: Digest } = {}): ImageSource {
    return {
      name: 'fixture',
      manifest: async (ref) => {
        const byTag = this.tags.get(ref);
        if (byTag) return byTag;
        const bytes = this.blobs.get(ref as Digest);
        if (!bytes) throw new Error(`fixture has no ${ref}`);
        const doc = JSON.parse(bytes.toString('utf8')) as { mediaType: string };
        return { bytes, mediaType: doc.mediaType, digest: ref as Digest };
      },
      blob: async (d) => {
        const bytes = this.blobs.get(d.digest)!;
        if (d.digest === o.corrupt) return Readable.from([Buffer.alloc(bytes.length, 0x5a)]);
        if (d.digest === o.breakAt) {
          return new Readable({
            read() {
              this.push(bytes.subarray(0, bytes.length >> 1));
              this.destroy(new Error('source connection lost'));
            },
          });
        }
        return Readable.from([bytes]);
      },
    };
  }
}

/** A tar of `files` (deterministic headers). */
async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, data] of Object.entries(files)) {
    pack.entry({ name, mtime: new Date(0), mode: 0o644, uid: 0, gid: 0 }, data);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as Readable) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Adds one image (three layers: gzip, plain tar, gzip) for `arch` and returns its manifest. */
async function addImage(f: Fixture, arch: string, seed: string): Promise<ManifestBytes> {
  const tars = [
    await tarOf({ [`a-${seed}`]: `one ${seed}` }),
    await tarOf({ [`b-${seed}`]: `two ${seed}`.repeat(50) }),
    await tarOf({ [`c-${seed}`]: randomBytes(64).toString('hex') }),
  ];
  const blobs = [gzipSync(tars[0]!), tars[1]!, gzipSync(tars[2]!)];
  const types = [MediaType.ociLayerGzip, MediaType.ociLayer, MediaType.ociLayerGzip];
  const layers = blobs.map((b, i) => ({ ...f.add(b), mediaType: types[i]! }));
  const rootfs = { type: 'layers', diff_ids: tars.map((t) => sha256(t)) };
  const config = { architecture: arch, os: 'linux', rootfs, config: {} } as ImageConfig;
  const cfg = { ...f.add(canonicalBytes(config)), mediaType: MediaType.ociConfig };
  const man: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config: cfg, layers };
  return f.manifest(man, MediaType.ociManifest);
}

/** The fixture: `v1` a multi-layer image, `multi` a two-platform index, `other` an unrelated image. */
interface Fixtures {
  f: Fixture;
  image: ManifestBytes;
  arm: ManifestBytes;
  index: ManifestBytes;
  other: ManifestBytes;
}

async function fixture(): Promise<Fixtures> {
  const f = new Fixture();
  const image = await addImage(f, 'amd64', 'v1');
  const arm = await addImage(f, 'arm64', 'arm');
  const desc = (m: ManifestBytes, architecture: string) => ({
    mediaType: m.mediaType,
    digest: m.digest,
    size: m.bytes.length,
    platform: { os: 'linux', architecture },
  });
  const manifests = [desc(image, 'amd64'), desc(arm, 'arm64')];
  const idx: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
  const index = f.manifest(idx, MediaType.ociIndex);
  const other = await addImage(f, 'amd64', 'other');
  f.tags.set('v1', image);
  f.tags.set('multi', index);
  f.tags.set('other', other);
  return { f, image, arm, index, other };
}

/** One place of one endpoint kind: a sink and (fresh) sources over the same destination. */
interface Place {
  sink(): ImageSink;
  source(): ImageSource;
  /** Checks with an independent tool that `tag` holds an image (of `digest`, where the tool can tell). */
  witness(tag: string, digest: Digest, layers: number): void;
}

interface Kind {
  name: string;
  place(label: string): Promise<Place>;
}

function kinds(t: Parameters<typeof tempDir>[0], reg: TestRegistry, client: RegistryClient): Kind[] {
  const skopeo = requireTool('skopeo', 'skopeo');
  const inspectRaw = (ref: string) => run(skopeo, ['inspect', '--raw', '--tls-verify=false', ref]);
  return [
    {
      name: 'registry',
      place: async (label) => {
        const repo = client.repository({ domain: reg.host, path: `conf/${label}` });
        return {
          sink: () => registrySink(repo),
          source: () => registrySource(repo),
          witness: (tag, digest) => {
            assert.equal(sha256(Buffer.from(inspectRaw(`docker://${reg.host}/conf/${label}:${tag}`))), digest);
          },
        };
      },
    },
    {
      name: 'store',
      place: async () => {
        const root = tempDir(t);
        const store = await Store.open(root);
        return {
          sink: () => storeSink(store, { repository: REPO }),
          source: () => storeSource(store, REPO),
          witness: (tag, digest) => {
            assert.equal(sha256(Buffer.from(inspectRaw(`oci:${join(root, 'oci')}:${REPO}:${tag}`))), digest);
          },
        };
      },
    },
    {
      name: 'oci',
      place: async () => {
        const dir = join(tempDir(t), 'layout');
        return {
          sink: () => ociLayoutSink(dir),
          source: () => ociLayoutSource(dir),
          witness: (tag, digest) => assert.equal(sha256(Buffer.from(inspectRaw(`oci:${dir}:${tag}`))), digest),
        };
      },
    },
    {
      name: 'docker-archive',
      place: async () => {
        const file = join(tempDir(t), 'img.tar');
        return {
          sink: () => dockerArchiveSink(file, { repository: REPO }),
          source: () => dockerArchiveSource(file),
          // skopeo reads the archive through manifest.json (its own manifest, so no digest to compare).
          witness: (tag, _digest, layers) => {
            const out = run(skopeo, ['inspect', `docker-archive:${file}:${REPO}:${tag}`]);
            const seen = JSON.parse(out) as { Layers: string[] };
            assert.equal(seen.Layers.length, layers);
          },
        };
      },
    },
  ];
}

/** Reads `ref` of `src` whole (every platform) into memory, verifying each blob; returns the top digest. */
async function readBack(src: ImageSource, ref: string): Promise<{ digest: Digest; blobs: Set<Digest> }> {
  const blobs = new Set<Digest>();
  const sink: ImageSink = {
    name: 'memory',
    putBlob: async (d, open) => {
      const h = new HashingStream();
      await pipeline(await open(), h, new Writable({ write: (_c, _e, cb) => cb() }));
      assert.equal(h.digest(), d.digest);
      blobs.add(d.digest);
      return 'uploaded';
    },
    putManifest: async (_r, m) => {
      assert.equal(sha256(m.bytes), m.digest);
      blobs.add(m.digest);
    },
  };
  try {
    const r = await transfer(src, ref, sink, [], { allPlatforms: true });
    return { digest: r.digest, blobs };
  } finally {
    await src.close?.();
  }
}

async function rejectsNaming(p: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => isDimgError(e) && e.message.includes(what), `a DimgError naming ${what}`);
}

/** Reads a whole stream, or rejects with its error. */
async function drain(p: Promise<Readable>): Promise<void> {
  await pipeline(await p, new Writable({ write: (_c, _e, cb) => cb() }));
}

test('endpoint conformance: registry, store, OCI layout and Docker archive behave alike', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const client = new RegistryClient();
  t.after(() => client.close());
  const { f, image, arm, index, other } = await fixture();
  const all = kinds(t, reg, client);
  const layersOf = (m: ManifestBytes) => (JSON.parse(m.bytes.toString('utf8')) as ImageManifest).layers.length;

  for (const kind of all) {
    const named = (what: string) => `${kind.name}: ${what}`;
    await t.test(named('a multi-layer image round-trips with its digest, and a re-put is idempotent'), async () => {
      const place = await kind.place(`${kind.name}-image`);
      const r = await transfer(f.source(), 'v1', place.sink(), ['v1']);
      assert.equal(r.digest, image.digest);
      place.witness('v1', image.digest, 3);
      const back = await readBack(place.source(), 'v1');
      assert.equal(back.digest, image.digest);
      assert.equal(back.blobs.size, 5, 'manifest, config and three layers');
      const outcomes: string[] = [];
      const onEvent = (e: TransferEvent) => {
        if (e.kind === 'blob') outcomes.push(e.outcome);
      };
      const again = await transfer(f.source(), 'v1', place.sink(), ['v1'], { onEvent });
      assert.equal(again.digest, image.digest);
      // What a sink already holds is skipped; an archive is written anew each time.
      if (kind.name !== 'docker-archive') assert.ok(!outcomes.includes('uploaded'), `nothing sent again: ${outcomes.join()}`);
      assert.equal((await readBack(place.source(), 'v1')).digest, image.digest);
      place.witness('v1', image.digest, 3);
    });

    await t.test(`${kind.name}: a two-platform index round-trips whole with its digest`, async () => {
      const place = await kind.place(`${kind.name}-index`);
      const r = await transfer(f.source(), 'multi', place.sink(), ['multi'], { allPlatforms: true });
      assert.equal(r.digest, index.digest);
      const back = await readBack(place.source(), 'multi');
      assert.equal(back.digest, index.digest);
      assert.equal(back.blobs.size, 1 + 2 * 5, 'the index and both images');
      const platform = { os: 'linux', architecture: 'arm64' };
      const picked = await transfer(place.source(), 'multi', place.sink(), ['arm'], { platform });
      assert.equal(picked.digest, arm.digest, 'a platform is picked from the stored index');
    });

    await t.test(`${kind.name}: a missing manifest or blob fails with a DimgError naming it`, async () => {
      const place = await kind.place(`${kind.name}-missing`);
      await transfer(f.source(), 'v1', place.sink(), ['v1']);
      const src = place.source();
      try {
        await rejectsNaming(src.manifest('nope'), 'nope');
        const absent = sha256(randomBytes(16));
        await rejectsNaming(drain(src.blob({ mediaType: MediaType.ociLayer, digest: absent, size: 16 })), absent);
      } finally {
        await src.close?.();
      }
    });

    await t.test(named('a failed, refused or cancelled transfer leaves the destination as it was'), async () => {
      const place = await kind.place(`${kind.name}-fail`);
      await transfer(f.source(), 'v1', place.sink(), ['v1']);
      const otherMan = JSON.parse(other.bytes.toString('utf8')) as ImageManifest;
      const lastLayer = otherMan.layers[2]!.digest;
      await assert.rejects(transfer(f.source({ breakAt: lastLayer }), 'other', place.sink(), ['v1', 'v2']));
      const corrupt = transfer(f.source({ corrupt: lastLayer }), 'other', place.sink(), ['v1', 'v2']);
      const mismatch = (e: unknown) => isDimgError(e) && /DIGEST/.test(e.code);
      await assert.rejects(corrupt, mismatch, 'a wrong blob is refused as a digest mismatch');
      const stop = new AbortController();
      const events: string[] = [];
      const onEvent = (e: { kind: string }) => {
        events.push(e.kind);
        if (events.length === 2) stop.abort();
      };
      const cancelled = transfer(f.source(), 'other', place.sink(), ['v1', 'v2'], { signal: stop.signal, onEvent });
      const stopped = (e: unknown) => isDimgError(e, 'TRANSFER_CANCELLED') || isDimgError(e, 'ABORTED');
      await assert.rejects(cancelled, stopped);
      assert.ok(!events.includes('manifest'), 'nothing is named once cancelled');
      const back = await readBack(place.source(), 'v1');
      assert.equal(back.digest, image.digest, 'the old tag still names the old image');
      const src = place.source();
      try {
        await assert.rejects(src.manifest('v2'), (e: unknown) => isDimgError(e), 'no half-written tag');
      } finally {
        await src.close?.();
      }
      place.witness('v1', image.digest, 3);
    });
  }

  await t.test('every pair (4×4): a copy keeps the manifest digest', async () => {
    for (const from of all) {
      const origin = await from.place(`${from.name}-from`);
      await transfer(f.source(), 'v1', origin.sink(), ['v1']);
      for (const to of all) {
        const dest = await to.place(`${from.name}-to-${to.name}`);
        const src = origin.source();
        try {
          const r = await transfer(src, 'v1', dest.sink(), ['v1']);
          assert.equal(r.digest, image.digest, `${from.name} → ${to.name}`);
        } finally {
          await src.close?.();
        }
        const back = await readBack(dest.source(), 'v1');
        assert.equal(back.digest, image.digest, `${from.name} → ${to.name}, read back`);
        dest.witness('v1', image.digest, layersOf(image));
      }
    }
  });
});
