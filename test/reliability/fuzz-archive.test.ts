/**
 * Property tests of the archive loader: archives written by `dimg image save` (Docker 25+ shape) and by
 * skopeo (`docker-archive:`, the Docker <= 24 shape), damaged byte by byte and rewritten structurally
 * (manifest.json and index.json pointing outside the archive, at missing or swapped files, blobs
 * whose content is not their digest, symlinked layers aiming outside, odd RepoTags). Each load gives
 * images or a DimgError; afterwards `verifyStore` finds nothing wrong (no name points at a broken
 * image, no blob has the wrong content) and nothing beside the store was written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Readable } from 'node:stream';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { isDimgError } from '../../src/errors.js';
import { loadArchive } from '../../src/archive/index.js';
import { Store } from '../../src/store/store.js';
import { storeOptions } from '../../src/store/defaults.js';
import { verifyStore } from '../../src/store/verify.js';
import { sha256 } from '../../src/oci/digest.js';
import { dimg } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { requireTool, run } from '../support/tools.js';
import { applyEdits, byteEdits, packTar, treeFingerprint, unpackTar, withinTime, type TarEntry } from '../support/mutate.js';

const SOAK = process.env.DIMG_SOAK === '1';
const runs = (n: number) => (SOAK ? n * 10 : n);

/** Makes the two seed archives (dimg save of two images; skopeo docker-archive of one). */
async function seeds(dir: string): Promise<{ modern: Buffer; legacy: Buffer }> {
  const root = join(dir, 'seed-store');
  for (const name of ['a', 'b']) {
    const rootfs = join(dir, `rootfs-${name}`);
    mkdirSync(join(rootfs, 'etc'), { recursive: true });
    writeFileSync(join(rootfs, 'etc', 'name'), `${name}\n`);
    writeFileSync(join(rootfs, 'data'), Buffer.alloc(3000, name));
    const r = await dimg(['image', 'import', rootfs, `fuzz/${name}:1`], { root, env: { SOURCE_DATE_EPOCH: '0' } });
    assert.equal(r.code, 0, r.stderr);
  }
  const modernFile = join(dir, 'modern.tar');
  const r = await dimg(['image', 'save', '-o', modernFile, 'fuzz/a:1', 'fuzz/b:1'], { root });
  assert.equal(r.code, 0, r.stderr);
  const legacyFile = join(dir, 'legacy.tar');
  run(requireTool('skopeo', 'skopeo'), ['copy', '--quiet', `oci:${root}/oci:docker.io/fuzz/a:1`, `docker-archive:${legacyFile}:fuzz/a:1`]);
  return { modern: readFileSync(modernFile), legacy: readFileSync(legacyFile) };
}

type Mutation = (entries: TarEntry[], sentinel: string) => TarEntry[];

function json(e: TarEntry): unknown {
  return JSON.parse(e.data.toString('utf8'));
}
function setJson(e: TarEntry, v: unknown): void {
  e.data = Buffer.from(JSON.stringify(v));
}
function editJson(name: string, f: (v: any, entries: TarEntry[], sentinel: string) => void): Mutation {
  return (entries, sentinel) => {
    const e = entries.find((x) => x.header.name === name || x.header.name === `./${name}`);
    if (e) {
      const v = json(e);
      f(v, entries, sentinel);
      setJson(e, v);
    }
    return entries;
  };
}
const blobEntries = (entries: TarEntry[]) => entries.filter((e) => /blobs\/sha256\/[0-9a-f]{64}$|\.tar$|[0-9a-f]{64}(\.json)?$/.test(e.header.name) && e.header.type === 'file');

/**
 * Rewrites the first image manifest of a modern archive with `f`, renames its blob to the new digest
 * and points index.json at it: an archive whose digests are all consistent but whose content lies.
 */
function consistentManifestEdit(f: (m: any) => void): Mutation {
  return (entries) => {
    const idx = entries.find((e) => e.header.name === 'index.json');
    if (!idx) return entries;
    const index = json(idx) as { manifests: { digest: string; size: number }[] };
    const top = index.manifests[0]!;
    const me = entries.find((e) => e.header.name === `blobs/sha256/${top.digest.slice(7)}`);
    if (!me) return entries;
    const m = json(me);
    f(m);
    setJson(me, m);
    const digest = sha256(me.data);
    me.header = { ...me.header, name: `blobs/sha256/${digest.slice(7)}` };
    top.digest = digest;
    top.size = me.data.length;
    setJson(idx, index);
    return entries;
  };
}

/** Structured damage, named for the report. */
const MUTATIONS: Record<string, Mutation> = {
  'manifest layer size lies (digests consistent)': consistentManifestEdit((m) => (m.layers[0].size += 1)),
  'manifest config size lies (digests consistent)': consistentManifestEdit((m) => (m.config.size = 1)),
  'manifest config digest not a string (digests consistent)': consistentManifestEdit((m) => (m.config.digest = 42)),
  'manifest layer digest traversal (digests consistent)': consistentManifestEdit((m) => (m.layers[0].digest = 'sha256:../../../../sentinel/secret')),
  'manifest layers not a list (digests consistent)': consistentManifestEdit((m) => (m.layers = 'x')),
  'manifest.json Config outside the archive': editJson('manifest.json', (v) => (v[0].Config = '../../../../etc/passwd')),
  'manifest.json Config absolute path': editJson('manifest.json', (v, _e, s) => (v[0].Config = `${s}/secret`)),
  'manifest.json layer outside the archive': editJson('manifest.json', (v) => (v[0].Layers[0] = '../../../../etc/passwd')),
  'manifest.json layer missing': editJson('manifest.json', (v) => v[0].Layers.push('nope/layer.tar')),
  'manifest.json layers swapped with another image': editJson('manifest.json', (v) => v.length > 1 && ([v[0].Layers, v[1].Layers] = [v[1].Layers, v[0].Layers])),
  'manifest.json Config is a layer': editJson('manifest.json', (v) => (v[0].Config = v[0].Layers[0])),
  'manifest.json RepoTags hostile': editJson('manifest.json', (v) => (v[0].RepoTags = ['../../x:1', 'UPPER/case:1', 'ok/name:' + 'x'.repeat(200), 'a:b:c'])),
  'manifest.json not an array': editJson('manifest.json', (v) => Object.assign(v, { 0: null })),
  'index.json digest traversal': editJson('index.json', (v) => (v.manifests[0].digest = 'sha256:../../../../etc/passwd')),
  'index.json digest of a layer': editJson('index.json', (v, entries) => {
    const layer = blobEntries(entries).sort((a, b) => b.data.length - a.data.length)[0];
    if (layer) v.manifests[0].digest = sha256(layer.data);
  }),
  'index.json digest missing from the archive': editJson('index.json', (v) => (v.manifests[0].digest = 'sha256:' + 'e'.repeat(64))),
  'index.json size lies': editJson('index.json', (v) => (v.manifests[0].size = 2 ** 53)),
  'index.json manifests not a list': editJson('index.json', (v) => (v.manifests = { a: 1 })),
  'oci-layout wrong version': editJson('oci-layout', (v) => (v.imageLayoutVersion = '9.9.9')),
  'a blob whose content is not its digest': (entries) => {
    const b = blobEntries(entries)[0];
    if (b) b.data = Buffer.concat([b.data, Buffer.from('tampered')]);
    return entries;
  },
  'every blob truncated to half': (entries) => {
    for (const b of blobEntries(entries)) b.data = b.data.subarray(0, b.data.length >> 1);
    return entries;
  },
  'layer replaced by a symlink outside the archive': (entries, sentinel) => {
    const b = blobEntries(entries).sort((x, y) => y.data.length - x.data.length)[0];
    if (b) Object.assign(b, { header: { ...b.header, type: 'symlink', linkname: `${sentinel}/secret` }, data: Buffer.alloc(0) });
    return entries;
  },
  'layer replaced by a relative symlink ../../': (entries) => {
    const b = blobEntries(entries).sort((x, y) => y.data.length - x.data.length)[0];
    if (b) Object.assign(b, { header: { ...b.header, type: 'symlink', linkname: '../../../../sentinel/secret' }, data: Buffer.alloc(0) });
    return entries;
  },
  'entry names with ../ prefix': (entries) => entries.map((e) => ({ ...e, header: { ...e.header, name: `../${e.header.name}` } })),
  'duplicate manifest.json (later one hostile)': (entries) => [...entries, { header: { ...entries[0]!.header, name: 'manifest.json', type: 'file', mode: 0o644 }, data: Buffer.from('[{"Config":"/etc/passwd","Layers":["/etc/shadow"],"RepoTags":["x:1"]}]') }],
  'drop a random file': (entries) => entries.filter((_, i) => i !== entries.length >> 1),
  'config diff_ids altered': (entries) => {
    for (const e of blobEntries(entries)) {
      try {
        const v = json(e) as { rootfs?: { diff_ids?: string[] } };
        if (v.rootfs?.diff_ids) {
          v.rootfs.diff_ids[0] = 'sha256:' + 'f'.repeat(64);
          setJson(e, v);
        }
      } catch {
        /* not JSON */
      }
    }
    return entries;
  },
};

test('archive loader: mutated and hostile archives load or fail with a DimgError; the store stays valid', async (t) => {
  const dir = tempDir(t);
  const { modern, legacy } = await seeds(dir);
  const parent = join(dir, 'arena');
  const sentinel = join(parent, 'sentinel');
  mkdirSync(sentinel, { recursive: true });
  writeFileSync(join(sentinel, 'secret'), 'original');
  const fingerprint = treeFingerprint(sentinel);
  const store = await Store.open(join(parent, 'store'), storeOptions());
  const modernEntries = await unpackTar(modern);
  const legacyEntries = await unpackTar(legacy);
  assert.ok(modernEntries.some((e) => e.header.name === 'index.json'), 'dimg save writes index.json');
  assert.ok(legacyEntries.some((e) => e.header.name === 'manifest.json') && !legacyEntries.some((e) => e.header.name === 'index.json'), 'skopeo writes the legacy shape');

  const outcomes = new Map<string, number>();
  let loads = 0;
  const loadChecked = async (archive: Buffer, what: string) => {
    loads++;
    let outcome = 'ok';
    try {
      await withinTime(loadArchive(store, Readable.from([archive]), 'fuzz archive'), 20_000, what);
    } catch (e) {
      if (!isDimgError(e)) throw new Error(`${what}: not a DimgError: ${e instanceof Error ? e.stack : String(e)}`);
      assert.ok(e.message.includes('fuzz archive') || /image|blob|digest|manifest|layer|reference|entry/i.test(e.message), `${what}: the error names no subject: ${e.message}`);
      outcome = e.code;
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    const report = await verifyStore(store);
    assert.deepEqual(report.problems, [], `${what}: the store is damaged after the load (${outcome})`);
    assert.equal(treeFingerprint(sentinel), fingerprint, `${what}: the sentinel changed`);
    return outcome;
  };

  // The seeds themselves load.
  assert.equal(await loadChecked(modern, 'modern seed'), 'ok');
  assert.equal(await loadChecked(legacy, 'legacy seed'), 'ok');

  // Every structured mutation on both shapes, plain and gzip.
  const structured: Record<string, string> = {};
  for (const [label, mutate] of Object.entries(MUTATIONS)) {
    for (const [shape, entries] of [['modern', modernEntries], ['legacy', legacyEntries]] as const) {
      const copy = entries.map((e) => ({ header: { ...e.header }, data: Buffer.from(e.data) }));
      let tar: Buffer;
      try {
        tar = await packTar(mutate(copy, sentinel));
      } catch {
        continue;
      }
      const out = await loadChecked(shape === 'modern' ? tar : gzipSync(tar), `${label} (${shape})`);
      structured[`${label} (${shape})`] = out;
    }
  }
  console.log(`# structured: ${JSON.stringify(structured, null, 1)}`);
  for (const [label, out] of Object.entries(structured)) {
    // The modern shape is read through index.json (manifest.json only lends names), the legacy one
    // through manifest.json: damage to the file a shape is read through must never load.
    const readThrough = label.endsWith('(modern)') ? /^(index\.json|oci-layout)/ : /^manifest\.json (Config|layer )/;
    const content = label.endsWith('(modern)') ? /not its digest|truncated|symlink|diff_ids|digests consistent/ : /not its digest|truncated|symlink|diff_ids/;
    if (readThrough.test(label) || content.test(label)) assert.notEqual(out, 'ok', `${label} loaded`);
  }

  // Byte-level damage of both seeds.
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('modern', 'legacy'), byteEdits(4), fc.boolean(), async (shape, edits, gz) => {
      const seed = shape === 'modern' ? modern : legacy;
      await loadChecked(gz ? applyEdits(gzipSync(seed), edits) : applyEdits(seed, edits), `${shape} ${gz ? 'gzip' : 'plain'} ${JSON.stringify(edits)}`);
    }),
    { numRuns: runs(120) },
  );
  // Random structured mutations stacked on each other.
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('modern', 'legacy'), fc.array(fc.constantFrom(...Object.keys(MUTATIONS)), { minLength: 1, maxLength: 3 }), async (shape, names) => {
      let entries: TarEntry[] = (shape === 'modern' ? modernEntries : legacyEntries).map((e) => ({ header: { ...e.header }, data: Buffer.from(e.data) }));
      let tar: Buffer;
      try {
        // A mutation may not apply on top of another (its JSON is gone): then the case is skipped.
        for (const n of names) entries = MUTATIONS[n]!(entries, sentinel);
        tar = await packTar(entries);
      } catch {
        return;
      }
      await loadChecked(tar, `${shape}: ${names.join(' + ')}`);
    }),
    { numRuns: runs(60) },
  );
  console.log(`# archive loads: ${loads}, outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`);
});
