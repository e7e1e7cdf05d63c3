/**
 * Property tests over the parsers that read untrusted text: the spec loader (random and mutated YAML,
 * alias bombs), the reference parser, and the registry manifest parser. Each gives a result or a
 * DimgError, never another exception, and never hangs. DIMG_SOAK=1 runs ten times as many cases.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readFileSync, readdirSync, mkdirSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { isDimgError } from '../../src/errors.js';
import { loadSpecText } from '../../src/specfile/load.js';
import { nodeSpecPorts } from '../../src/specfile/node-ports.js';
import { formatReference, parseReference } from '../../src/oci/reference.js';
import { manifestMediaType, verifyManifest, parseImageManifest, parseIndex } from '../../src/registry/manifest.js';
import { isDigest, sha256 } from '../../src/oci/digest.js';
import { MediaType, isIndexType } from '../../src/oci/media-types.js';
import { REPO_ROOT } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { applyEdits, byteEdits, withinTime } from '../support/mutate.js';

const SOAK = process.env.DIMG_SOAK === '1';
const runs = (n: number) => (SOAK ? n * 10 : n);
const MANY_IMAGES = SOAK ? 10_000 : 2_000;

/** Asserts `err` is a DimgError (the only acceptable failure), re-throwing anything else for fast-check. */
function expectDimgError(err: unknown, what: string): void {
  if (isDimgError(err)) {
    assert.ok(err.message.length > 0 && err.hint !== undefined, `${what}: DimgError without message/hint`);
    return;
  }
  throw new Error(`${what}: not a DimgError: ${err instanceof Error ? err.stack : String(err)}`);
}

/** Seed specs: every YAML the repository ships (fixtures, examples, the demo). */
function seedSpecs(): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) {
        if (n !== 'rootfs' && n !== 'node_modules') walk(p);
      } else if (/\.ya?ml$/.test(n)) out.push(readFileSync(p, 'utf8'));
    }
  };
  walk(join(REPO_ROOT, 'test', 'fixtures', 'specs'));
  walk(join(REPO_ROOT, 'examples'));
  out.push(readFileSync(join(REPO_ROOT, 'images.yaml'), 'utf8'));
  return out;
}

/** YAML pieces that stress parsers: anchors, merges, tags, deep flow nesting, odd scalars. */
const yamlNoise = fc.constantFrom(
  ': ', '- ', '{', '}', '[', ']', '&a ', '*a', '<<: *a', '!!binary ', '!!str ', '? ', '|', '>', '"', "'", '\t', '\n', '\n  ', '#',
  '%YAML 1.2\n---\n', '...\n', '${env.X}', '${git.sha}', '${', 'from: ', 'images:', 'steps:', 'copy: ../../etc/passwd', 'to: /',
  'run: [', 'version: 1', 'registries:', 'url: ', '\u0000', '\ufeff', '0x10', '1e999', '~', 'null', '[[[[[[[[[[', '{a: {b: {c: {d:',
);

test('spec loader: random YAML values and mutated real specs give a spec or problems (SpecError), never a crash or hang', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'ctx'), { recursive: true });
  writeFileSync(join(dir, 'ctx', 'a.txt'), 'a');
  writeFileSync(join(dir, 'Dockerfile'), 'FROM scratch\nCOPY a.txt /\n');
  const ports = nodeSpecPorts({ cwd: dir, env: { X: 'x' }, now: () => new Date(0), git: async () => undefined });
  const file = join(dir, 'images.yaml');
  const load = async (text: string) => {
    try {
      const r = await withinTime(loadSpecText(file, 'images.yaml', text, ports), 5000, 'loadSpecText');
      assert.ok(r.spec !== undefined || r.problems.length > 0, 'neither a spec nor problems');
      if (r.spec === undefined) for (const p of r.problems) assert.equal(typeof p.message, 'string');
    } catch (e) {
      expectDimgError(e, 'spec loader');
    }
  };
  const seeds = seedSpecs();
  assert.ok(seeds.length >= 10, `found only ${seeds.length} seed specs`);

  // Whole random documents, and random values planted into a valid spec's tree.
  await fc.assert(fc.asyncProperty(fc.jsonValue({ maxDepth: 6 }), async (v) => load(stringify(v))), { numRuns: runs(150) });
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.string({ maxLength: 12 }), fc.anything({ maxDepth: 3 })), { maxLength: 4 }), async (seed, plants) => {
      let doc: unknown;
      try {
        doc = (await import('yaml')).parse(seed);
      } catch {
        return;
      }
      if (!doc || typeof doc !== 'object') return;
      const d = doc as Record<string, unknown>;
      const images = d.images && typeof d.images === 'object' ? (d.images as Record<string, unknown>) : d;
      for (const [k, v] of plants) {
        const img = Object.values(images)[k.length % Math.max(1, Object.keys(images).length)];
        if (img && typeof img === 'object') (img as Record<string, unknown>)[k || 'from'] = v;
        else d[k] = v;
      }
      let text: string;
      try {
        text = stringify(doc);
      } catch {
        return; // fc.anything can make values YAML cannot write (e.g. symbols); not the loader's concern
      }
      await load(text);
    }),
    { numRuns: runs(150) },
  );
  // Byte-level damage of real specs, and YAML syntax noise spliced in.
  await fc.assert(fc.asyncProperty(fc.constantFrom(...seeds), byteEdits(5), async (seed, edits) => load(applyEdits(Buffer.from(seed), edits).toString('utf8'))), { numRuns: runs(300) });
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), yamlNoise), { minLength: 1, maxLength: 6 }), async (seed, noise) => {
      let text = seed;
      for (const [at, piece] of noise) {
        const i = at % (text.length + 1);
        text = text.slice(0, i) + piece + text.slice(i);
      }
      await load(text);
    }),
    { numRuns: runs(300) },
  );
});

test('spec loader: alias bombs, deep nesting and huge scalars are refused or loaded within bounds', async (t) => {
  const dir = tempDir(t);
  const ports = nodeSpecPorts({ cwd: dir, env: {}, now: () => new Date(0), git: async () => undefined });
  const laughs = ['version: 1', 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < 12; i++) laughs.push(`a${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(',')}]`);
  laughs.push('images: *a11');
  const cases: Record<string, string> = {
    'billion laughs': laughs.join('\n'),
    'deep flow nesting': `version: 1\nimages: ${'['.repeat(5000)}${']'.repeat(5000)}`,
    'deep block nesting': `version: 1\nimages:\n${Array.from({ length: 2000 }, (_, i) => `${' '.repeat(i + 1)}k${i}:`).join('\n')} x`,
    'megabyte scalar': `version: 1\nproject: ${'x'.repeat(2 ** 20)}\nimages: {}`,
    // Loading is superlinear in the image count (yaml's duplicate-key check and per-image key lookups):
    // ~1.4 s for 4,000 images, ~11 s for 10,000 on the reference machine; the soak run checks 10,000.
    [`${MANY_IMAGES} images`]: `version: 1\nimages:\n${Array.from({ length: MANY_IMAGES }, (_, i) => `  i${i}: { from: scratch, tags: ["1"] }`).join('\n')}`,
    'self-referencing from': 'version: 1\nimages:\n  a: { from: b }\n  b: { from: a }',
    'merge key loop': 'version: 1\nx: &x { <<: *x }\nimages: {}',
  };
  for (const [label, text] of Object.entries(cases)) {
    const started = Date.now();
    try {
      const r = await withinTime(loadSpecText(join(dir, 'images.yaml'), 'images.yaml', text, ports), 60_000, label);
      assert.ok(r.spec !== undefined || r.problems.length > 0, label);
    } catch (e) {
      expectDimgError(e, label);
    }
    assert.ok(Date.now() - started < 60_000, `${label} took ${Date.now() - started} ms`);
    console.log(`# ${label}: ${Date.now() - started} ms`);
  }
});

const refChars = fc.constantFrom(...'abcz019./:@_-AZ'.split(''), '..', '//', '::', '@sha256:', 'sha256:', '[::1]', 'localhost', ':5000/', '\u00e9', ' ', '\t', '%');

test('reference parser: random and mutated references parse to a normal form that round-trips, or are REFERENCE_INVALID', () => {
  const valid = ['busybox', 'library/busybox:1.36', 'ghcr.io/a/b/c:v1.2-rc.3', '127.0.0.1:5000/x/y@sha256:' + 'a'.repeat(64), 'localhost/x:latest', '[::1]:5000/x:1', 'docker.io/x/y:z@sha256:' + '0'.repeat(64)];
  const check = (s: string) => {
    let r: ReturnType<typeof parseReference>;
    try {
      r = parseReference(s);
    } catch (e) {
      expectDimgError(e, `parseReference(${JSON.stringify(s)})`);
      assert.equal((e as { code: string }).code, 'REFERENCE_INVALID');
      return;
    }
    const formatted = formatReference(r);
    assert.deepEqual({ ...parseReference(formatted) }, { ...r }, `round trip of ${JSON.stringify(s)} via ${formatted}`);
    assert.ok(!/\s|\.\.\/|\/\.\.|^\//.test(r.path), `path ${r.path} of ${JSON.stringify(s)}`);
    if (r.digest) assert.ok(isDigest(r.digest));
  };
  fc.assert(fc.property(fc.array(refChars, { maxLength: 40 }).map((a) => a.join('')), check), { numRuns: runs(3000) });
  fc.assert(fc.property(fc.string({ maxLength: 300, unit: 'binary' }), check), { numRuns: runs(2000) });
  fc.assert(fc.property(fc.constantFrom(...valid), byteEdits(3), (v, edits) => check(applyEdits(Buffer.from(v), edits).toString('latin1'))), { numRuns: runs(2000) });
  // Pathological lengths finish fast (no catastrophic regex backtracking).
  for (const s of ['a'.repeat(100_000), `${'a.'.repeat(50_000)}!`, `${'a-'.repeat(50_000)}/`, `x/${'a__'.repeat(30_000)}-`, `${'[:'.repeat(30_000)}]`]) {
    const t0 = Date.now();
    check(s);
    assert.ok(Date.now() - t0 < 1000, `parseReference on a ${s.length}-char input took ${Date.now() - t0} ms`);
  }
});

const digestArb = fc.oneof(fc.constant('sha256:' + 'b'.repeat(64)), fc.constant('sha256:../../../etc/passwd'), fc.constant('sha512:' + 'c'.repeat(128)), fc.string({ maxLength: 80 }), fc.integer());
const descriptorArb = fc.record(
  { mediaType: fc.oneof(fc.constantFrom(MediaType.ociLayerGzip, MediaType.ociConfig, MediaType.ociManifest, MediaType.dockerManifest), fc.string(), fc.integer()), digest: digestArb, size: fc.oneof(fc.nat(), fc.integer(), fc.double(), fc.string(), fc.constant(2 ** 64)), platform: fc.anything({ maxDepth: 2 }) },
  { requiredKeys: [] },
);
const manifestArb = fc.oneof(
  fc.record({ schemaVersion: fc.constantFrom(2, 1, '2'), mediaType: fc.constantFrom(MediaType.ociManifest, MediaType.dockerManifest, MediaType.ociIndex, MediaType.dockerManifestList, 'x'), config: fc.oneof(descriptorArb, fc.anything({ maxDepth: 2 })), layers: fc.oneof(fc.array(descriptorArb, { maxLength: 4 }), fc.anything({ maxDepth: 2 })) }, { requiredKeys: [] }),
  fc.record({ schemaVersion: fc.constantFrom(2, 1), mediaType: fc.constantFrom(MediaType.ociIndex, MediaType.dockerManifestList), manifests: fc.oneof(fc.array(descriptorArb, { maxLength: 4 }), fc.anything({ maxDepth: 2 })) }, { requiredKeys: [] }),
  fc.jsonValue({ maxDepth: 4 }),
);

test('manifest parser: random and mutated manifests give well-formed descriptors or a DimgError', () => {
  const cts = fc.constantFrom(undefined, 'application/json', MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList, 'application/vnd.docker.distribution.manifest.v1+prettyjws', 'text/html; charset=utf-8');
  const check = (bytes: Buffer, ct: string | undefined) => {
    try {
      const mediaType = manifestMediaType(ct, bytes, 'registry.test/x:1');
      const digest = verifyManifest(bytes, sha256(bytes), sha256(bytes), 'registry.test/x:1');
      const m = { bytes, mediaType, digest };
      const descs = isIndexType(mediaType) ? parseIndex(m).manifests : (() => {
        const im = parseImageManifest(m);
        return [im.config, ...im.layers];
      })();
      for (const d of descs) {
        assert.ok(isDigest(d.digest), `descriptor digest ${JSON.stringify(d.digest)} accepted`);
        assert.ok(Number.isSafeInteger(d.size) && d.size >= 0, `descriptor size ${JSON.stringify(d.size)} accepted`);
        assert.equal(typeof d.mediaType, 'string', `descriptor media type ${JSON.stringify(d.mediaType)} accepted`);
      }
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      expectDimgError(e, 'manifest parser');
    }
  };
  fc.assert(fc.property(manifestArb, cts, (v, ct) => check(Buffer.from(JSON.stringify(v) ?? 'null'), ct)), { numRuns: runs(2000) });
  const good = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, digest: 'sha256:' + 'a'.repeat(64), size: 10 }, layers: [{ mediaType: MediaType.ociLayerGzip, digest: 'sha256:' + 'b'.repeat(64), size: 20 }] }));
  fc.assert(fc.property(byteEdits(3), cts, (edits, ct) => check(applyEdits(good, edits), ct)), { numRuns: runs(2000) });
  // A manifest that is not what was asked for is refused whatever it says.
  assert.throws(() => verifyManifest(good, sha256('other'), undefined, 'x'), (e: unknown) => isDimgError(e, 'DIGEST_MISMATCH'));
  assert.throws(() => verifyManifest(good, undefined, sha256('other'), 'x'), (e: unknown) => isDimgError(e, 'DIGEST_MISMATCH'));
});
