/**
 * `dimg store verify [--repair]`: checks the whole store against what it claims to hold, and with
 * `repair` removes what is damaged so the rest stays usable:
 *
 *  - every blob hashes to its name (corrupt blobs are removed);
 *  - every index entry's closure (manifest → config and layers; index → child manifests) is present
 *    and intact (a name pointing at a broken image is removed, a dangling one too);
 *  - the index itself parses (an unreadable index.json is rebuilt with every stored image manifest
 *    as a dangling entry: names are lost, content is not);
 *  - layer records and cache entries are readable JSON whose blobs exist (removed otherwise);
 *  - every overlay layer dir has its `link` file, its `diff` dir and its short link in `l/`.
 */
import { createReadStream, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { HashingStream, isDigest, type Digest } from '../oci/digest.js';
import { isImageManifestType, isIndexType } from '../oci/media-types.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from '../oci/types.js';
import { readJsonFile } from './fsutil.js';
import { emptyIndex } from './refs.js';
import type { Store } from './store.js';
import { writeFileAtomic } from './fsutil.js';
import { canonicalJson } from '../oci/canonical-json.js';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';

/** One thing found wrong, with what repair did about it (if it ran). */
export interface VerifyProblem {
  kind: 'corrupt-blob' | 'broken-image' | 'corrupt-index' | 'bad-layer-record' | 'bad-cache-entry' | 'bad-layer-dir';
  /** What is wrong, naming its subject. */
  message: string;
  /** Set when `repair` fixed it. */
  repaired?: string;
}

/** The result of a verify run. */
export interface VerifyReport {
  problems: VerifyProblem[];
  blobs: number;
  images: number;
  layerDirs: number;
  cacheEntries: number;
}

/** Verifies (and with `repair`, repairs) the store. Problems left unrepaired are the ones without `repaired`. */
export async function verifyStore(store: Store, opts: { repair?: boolean } = {}): Promise<VerifyReport> {
  const repair = Boolean(opts.repair);
  const problems: VerifyProblem[] = [];
  const note = (p: VerifyProblem) => problems.push(p);

  // 1. Blobs hash to their names.
  const blobs = await store.blobs.list();
  const bad = new Set<Digest>();
  for (const b of blobs) {
    const actual = await hashFile(store.blobs.path(b.digest)).catch(() => undefined);
    if (actual === b.digest) continue;
    bad.add(b.digest);
    const p: VerifyProblem = { kind: 'corrupt-blob', message: `blob ${b.digest} is corrupt: its content hashes to ${actual ?? '(unreadable)'}` };
    if (repair) {
      await store.blobs.remove(b.digest);
      p.repaired = 'removed';
    }
    note(p);
  }
  const present = async (d: Digest) => !bad.has(d) && (await store.blobs.has(d));

  // 2. The index parses; each entry's closure is intact.
  let entries: Awaited<ReturnType<Store['entries']>>;
  try {
    entries = await store.entries();
  } catch (e) {
    const p: VerifyProblem = { kind: 'corrupt-index', message: `the store index ${store.refs.indexPath} is unreadable: ${(e as Error).message}` };
    if (repair) {
      const found = await rebuildIndex(store, bad);
      p.repaired = `rebuilt with ${found} dangling image(s); names are lost`;
    }
    note(p);
    entries = repair ? await store.entries() : [];
  }
  const broken: typeof entries = [];
  for (const e of entries) {
    const why = await closureProblem(store, e.descriptor, present);
    if (!why) continue;
    broken.push(e);
    note({ kind: 'broken-image', message: `image ${e.name ?? e.descriptor.digest} is broken: ${why}`, repaired: repair ? 'name removed' : undefined });
  }
  if (repair && broken.length > 0) {
    const keys = new Set(broken.map((e) => `${e.name ?? ''}@${e.descriptor.digest}`));
    await store.removeEntries((e) => keys.has(`${e.name ?? ''}@${e.descriptor.digest}`));
  }

  // 3. Layer records.
  for (const name of await fs.readdir(store.layers.dir).catch(() => [] as string[])) {
    if (!name.endsWith('.json')) continue;
    const path = join(store.layers.dir, name);
    const rec = await readJsonFile<{ diffId?: string; blobs?: { digest: Digest }[] }>(path).catch(() => undefined);
    if (!rec || !Array.isArray(rec.blobs) || !rec.diffId || !isDigest(rec.diffId)) {
      note({ kind: 'bad-layer-record', message: `layer record ${path} is unreadable`, repaired: repair ? 'removed' : undefined });
      if (repair) await fs.rm(path, { force: true });
      continue;
    }
    const missing: Digest[] = [];
    for (const b of rec.blobs) if (!(await present(b.digest))) missing.push(b.digest);
    if (missing.length === 0) continue;
    note({ kind: 'bad-layer-record', message: `layer record of ${rec.diffId} lists missing blob(s) ${missing.join(', ')}`, repaired: repair ? 'missing blobs dropped from the record' : undefined });
    if (repair) {
      const full = (await store.layers.get(rec.diffId as Digest))!;
      await store.layers.put({ ...full, blobs: full.blobs.filter((b) => !missing.includes(b.digest)) });
    }
  }

  // 4. Cache entries.
  let cacheEntries = 0;
  for (const name of await fs.readdir(store.cache.dir).catch(() => [] as string[])) {
    if (!name.endsWith('.json')) continue;
    const path = join(store.cache.dir, name);
    const e = await readJsonFile<{ key?: string; blobs?: Digest[] }>(path).catch(() => undefined);
    if (!e || !Array.isArray(e.blobs)) {
      note({ kind: 'bad-cache-entry', message: `build-cache entry ${path} is unreadable`, repaired: repair ? 'removed' : undefined });
      if (repair) await fs.rm(path, { force: true });
      continue;
    }
    cacheEntries++;
    const missing: Digest[] = [];
    for (const b of e.blobs) if (!(await present(b))) missing.push(b);
    if (missing.length === 0) continue;
    note({ kind: 'bad-cache-entry', message: `build-cache entry ${e.key ?? name} needs missing blob(s) ${missing.join(', ')}`, repaired: repair ? 'removed' : undefined });
    if (repair) await fs.rm(path, { force: true });
  }

  // 5. Overlay layer dirs.
  const chains = await store.overlay.list();
  for (const chain of chains) {
    const base = join(store.overlay.dir, chain.slice(7));
    const why = await layerDirProblem(store, base);
    if (!why) continue;
    note({ kind: 'bad-layer-dir', message: `layer dir ${base} ${why}`, repaired: repair ? 'removed (it is unpacked again when needed)' : undefined });
    if (repair) {
      await store.overlay.remove(chain);
      await fs.rm(base, { recursive: true, force: true });
    }
  }

  return { problems, blobs: blobs.length, images: entries.length, layerDirs: chains.length, cacheEntries };
}

async function hashFile(path: string): Promise<Digest> {
  const h = new HashingStream();
  await pipeline(createReadStream(path), h, new Writable({ write: (_c, _e, cb) => cb() }));
  return h.digest();
}

/** Why the content behind `d` is incomplete, or undefined when it is whole. */
async function closureProblem(store: Store, d: Descriptor, present: (d: Digest) => Promise<boolean>): Promise<string | undefined> {
  if (!(await present(d.digest))) return `manifest ${d.digest} is missing or corrupt`;
  const wrongSize = await sizeProblem(store, d);
  if (wrongSize) return wrongSize;
  if (isIndexType(d.mediaType)) {
    const index = await store.blobs.readJson<ImageIndex>(d.digest).catch(() => undefined);
    if (!index || !Array.isArray(index.manifests)) return `index ${d.digest} is not a valid image index`;
    let whole = 0;
    const problems: string[] = [];
    for (const m of index.manifests) {
      if (!(await present(m.digest))) continue; // an index may list platforms that were not pulled
      const why = await closureProblem(store, m, present);
      if (why) problems.push(why);
      else whole++;
    }
    if (problems.length > 0) return problems[0];
    return whole === 0 ? `index ${d.digest} has none of its manifests in the store` : undefined;
  }
  if (!isImageManifestType(d.mediaType)) return undefined; // artifacts: nothing more to check
  const manifest = await store.blobs.readJson<ImageManifest>(d.digest).catch(() => undefined);
  if (!manifest || !manifest.config || !Array.isArray(manifest.layers)) return `manifest ${d.digest} is not a valid image manifest`;
  if (!(await present(manifest.config.digest))) return `config ${manifest.config.digest} is missing or corrupt`;
  const config = await store.blobs.readJson<ImageConfig>(manifest.config.digest).catch(() => undefined);
  if (!config) return `config ${manifest.config.digest} is not valid JSON`;
  for (const l of manifest.layers) if (!(await present(l.digest))) return `layer ${l.digest} is missing or corrupt`;
  for (const x of [manifest.config, ...manifest.layers]) {
    const why = await sizeProblem(store, x);
    if (why) return why;
  }
  return undefined;
}

/** A descriptor whose size is not its blob's: readers that trust sizes (skopeo, registries) would fail on it. */
async function sizeProblem(store: Store, d: Descriptor): Promise<string | undefined> {
  const size = await store.blobs.stat(d.digest);
  return size !== undefined && size !== d.size ? `descriptor of ${d.digest} says ${String(d.size)} bytes, the blob has ${size}` : undefined;
}

async function layerDirProblem(store: Store, base: string): Promise<string | undefined> {
  let link: string;
  try {
    link = (await fs.readFile(join(base, 'link'), 'utf8')).trim();
  } catch {
    return 'has no link file';
  }
  const diff = await fs.stat(join(base, 'diff')).catch(() => undefined);
  if (!diff?.isDirectory()) return 'has no diff directory';
  const target = await fs.readlink(join(store.overlay.linkDir, link)).catch(() => undefined);
  if (target === undefined) return `has no short link l/${link}`;
  return undefined;
}

/** Rewrites index.json with every intact image manifest (or index) no other index lists. */
async function rebuildIndex(store: Store, bad: Set<Digest>): Promise<number> {
  const tops = new Map<Digest, Descriptor>();
  const children = new Set<Digest>();
  for (const b of await store.blobs.list()) {
    if (bad.has(b.digest) || b.size > 4 << 20) continue;
    const doc = await store.blobs.readJson<{ mediaType?: string; config?: unknown; manifests?: Descriptor[] }>(b.digest).catch(() => undefined);
    if (!doc || typeof doc !== 'object') continue;
    const type = doc.mediaType;
    if (!isImageManifestType(type) && !isIndexType(type)) continue;
    tops.set(b.digest, { mediaType: type!, digest: b.digest, size: b.size });
    if (isIndexType(type)) doc.manifests?.forEach((m) => children.add(m.digest));
  }
  const index = emptyIndex();
  index.manifests = [...tops.values()].filter((d) => !children.has(d.digest));
  await store.withLock(() => writeFileAtomic(store.refs.indexPath, `${canonicalJson(index)}\n`, store.tmpDir));
  return index.manifests.length;
}
