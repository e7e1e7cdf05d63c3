/**
 * Property and corpus tests of the layer extractor: random hostile entry lists, byte-mutated real
 * layers (plain and gzip), and an extended nasty corpus (long symlink chains and loops, 10^5 and 10^6
 * entries, huge declared sizes, PAX overrides). Every extraction gives a result or a DimgError; a
 * sentinel directory beside the target (and the target's pre-existing lower-layer symlinks that
 * point at it) is never written through. DIMG_SOAK=1 runs ten times as many cases and 10^6 entries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Readable } from 'node:stream';
import { promises as fs, readdirSync, readFileSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { extractLayer, type ExtractLimits } from '../../src/layer/index.js';
import { isDimgError } from '../../src/errors.js';
import { packWithTarStream, rawHeader } from '../support/nasty-tars.js';
import { applyEdits, byteEdits, treeFingerprint, withinTime } from '../support/mutate.js';
import { tempDir } from '../support/tmp.js';

const SOAK = process.env.DIMG_SOAK === '1';
const runs = (n: number) => (SOAK ? n * 10 : n);

interface Arena {
  parent: string;
  target: string;
  sentinel: string;
  fingerprint: string;
}

/** parent/{target,sentinel}; the target holds a "lower layer" whose symlinks aim at the sentinel. */
function arena(parent: string, lower: boolean): Arena {
  const target = join(parent, 'target');
  const sentinel = join(parent, 'sentinel');
  mkdirSync(sentinel, { recursive: true });
  writeFileSync(join(sentinel, 'secret'), 'original');
  mkdirSync(join(sentinel, 'sub'), { recursive: true });
  mkdirSync(target, { recursive: true });
  if (lower) {
    symlinkSync(sentinel, join(target, 'lower_abs'));
    symlinkSync('../sentinel', join(target, 'lower_rel'));
    symlinkSync('lower_loop', join(target, 'lower_loop'));
    mkdirSync(join(target, 'etc'));
    writeFileSync(join(target, 'etc', 'passwd'), 'root:x:0:0::/:/bin/sh\n');
  }
  return { parent, target, sentinel, fingerprint: treeFingerprint(sentinel) };
}

function assertSentinelUntouched(a: Arena, what: string): void {
  assert.deepEqual(readdirSync(a.parent).sort(), ['sentinel', 'target'], `${what}: something appeared beside the target`);
  assert.equal(treeFingerprint(a.sentinel), a.fingerprint, `${what}: the sentinel changed`);
  assert.equal(readFileSync(join(a.sentinel, 'secret'), 'utf8'), 'original', what);
}

/** Extracts `tar` in `mode` into a fresh arena; returns 'ok' or the DimgError code, failing on anything else. */
async function extractChecked(base: string, n: number, tar: Buffer | Readable, mode: 'flatten' | 'overlay', what: string, limits?: ExtractLimits, timeoutMs = 10_000): Promise<string> {
  const a = arena(join(base, String(n)), mode === 'flatten');
  let outcome = 'ok';
  try {
    await withinTime(extractLayer(Buffer.isBuffer(tar) ? Readable.from([tar]) : tar, a.target, { mode, limits, subject: 'fuzz' }), timeoutMs, what);
  } catch (e) {
    if (!isDimgError(e)) throw new Error(`${what}: not a DimgError: ${e instanceof Error ? e.stack : String(e)}`);
    assert.match(e.code, /^LAYER_(UNSAFE|LIMIT|INVALID|CORRUPT)$|^(COMPRESSION_|ARCHIVE_)/, `${what}: code ${e.code}`);
    outcome = e.code;
    // The file system here is healthy and we are root: a file-system failure means a hostile entry
    // reached a syscall unchecked and is blamed on the disk instead of named as the archive's fault.
    if (e.code === 'LAYER_EXTRACT_FAILED') throw new Error(`${what}: misclassified as a file-system failure: ${e.message}`);
  }
  assertSentinelUntouched(a, what);
  await fs.rm(a.parent, { recursive: true, force: true });
  return outcome;
}

function tally(m: Map<string, number>, k: string): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

const nameArb = (sentinel: string) =>
  fc
    .array(fc.constantFrom('a', 'b', 'lower_abs', 'lower_rel', 'lower_loop', 'etc', '..', '.', '', '.wh.a', '.wh..wh..opq', '.wh.', 'x\u0000y', sentinel.slice(1)), { minLength: 1, maxLength: 4 })
    .chain((parts) => fc.constantFrom(parts.join('/'), `/${parts.join('/')}`, `./${parts.join('/')}`, `${parts.join('/')}/`));
const linkArb = (sentinel: string) => fc.constantFrom(sentinel, `${sentinel}/secret`, '../sentinel', '../../sentinel/secret', '..', '/', 'a', 'b', 'lower_abs', 'lower_abs/secret', 'etc/passwd', 'a/b', '');

/** Random hostile entry lists. */
const entriesArb = (sentinel: string) =>
  fc.array(
    fc.record({
      name: nameArb(sentinel),
      type: fc.constantFrom('file', 'file', 'directory', 'symlink', 'symlink', 'link', 'fifo', 'character-device'),
      linkname: linkArb(sentinel),
      pax: fc.option(fc.record({ path: nameArb(sentinel), linkpath: linkArb(sentinel) }, { requiredKeys: [] }), { nil: undefined }),
      mode: fc.constantFrom(0o644, 0o755, 0o4777, 0o000, 0o7777),
    }),
    { minLength: 1, maxLength: 8 },
  );

test('extractor: random hostile entry lists never write outside the target', async (t) => {
  const base = tempDir(t);
  const probe = arena(join(base, 'probe'), false);
  const outcomes = new Map<string, number>();
  let n = 0;
  await fc.assert(
    fc.asyncProperty(entriesArb(probe.sentinel), fc.constantFrom('flatten' as const, 'overlay' as const), fc.boolean(), async (entries, mode, gz) => {
      let tar: Buffer;
      try {
        tar = await packWithTarStream(
          entries.map((e) => ({
            header: { name: e.name, type: e.type as 'file', linkname: e.type === 'symlink' || e.type === 'link' ? e.linkname : undefined, mode: e.mode, pax: e.pax as Record<string, string> | undefined, devmajor: 1, devminor: 3 },
            data: e.type === 'file' ? 'pwned' : undefined,
          })),
        );
      } catch {
        return; // tar-stream refused to write it (e.g. an empty name): nothing to extract
      }
      tally(outcomes, await extractChecked(base, n++, gz ? gzipSync(tar) : tar, mode, `random entries ${JSON.stringify(entries)}`));
    }),
    { numRuns: runs(250) },
  );
  console.log(`# random entry lists: ${n} extractions, outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`);
  assert.ok((outcomes.get('ok') ?? 0) > 0 && (outcomes.get('LAYER_UNSAFE') ?? 0) > 0, 'the generator reaches both accepted and refused archives');
});

test('extractor: byte-mutated real layers (plain and gzip) give a result or a DimgError, never an escape or hang', async (t) => {
  const base = tempDir(t);
  const probe = arena(join(base, 'probe'), false);
  const seed = await packWithTarStream([
    { header: { name: 'dir/', type: 'directory', mode: 0o755 } },
    { header: { name: 'dir/file', type: 'file', mode: 0o644 }, data: 'hello world\n'.repeat(50) },
    { header: { name: 'dir/link', type: 'symlink', linkname: probe.sentinel } },
    { header: { name: 'dir/rel', type: 'symlink', linkname: '../../sentinel' } },
    { header: { name: 'dir/hard', type: 'link', linkname: 'dir/file' } },
    { header: { name: `long/${'n'.repeat(150)}/${'m'.repeat(120)}`, type: 'file', mode: 0o600 }, data: 'long name via PAX' },
    { header: { name: 'x', type: 'file', pax: { 'SCHILY.xattr.user.k': 'v', path: 'dir/pax-renamed' } }, data: 'pax' },
    { header: { name: 'dir/.wh.gone', type: 'file' }, data: '' },
    { header: { name: 'opq/.wh..wh..opq', type: 'file' }, data: '' },
    { header: { name: 'lower_abs/through', type: 'file' }, data: 'x' },
  ]).catch(() => undefined);
  assert.ok(seed, 'seed tar packs');
  const outcomes = new Map<string, number>();
  let n = 0;
  await fc.assert(
    fc.asyncProperty(byteEdits(4), fc.constantFrom('flatten' as const, 'overlay' as const), fc.boolean(), async (edits, mode, gz) => {
      const mutated = gz ? applyEdits(gzipSync(seed), edits) : applyEdits(seed, edits);
      tally(outcomes, await extractChecked(base, n++, mutated, mode, `mutated (${gz ? 'gzip' : 'plain'}) ${JSON.stringify(edits)}`));
    }),
    { numRuns: runs(300) },
  );
  console.log(`# mutated layers: ${n} extractions, outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`);
});

/** A stream of `count` tar headers made lazily (10^6 headers would be 512 MB in memory). */
function manyEntries(count: number, make: (i: number) => Buffer): Readable {
  let i = 0;
  return new Readable({
    read() {
      const batch: Buffer[] = [];
      for (let k = 0; k < 2048 && i < count; k++, i++) batch.push(make(i));
      if (batch.length > 0) this.push(Buffer.concat(batch));
      if (i >= count) {
        this.push(Buffer.alloc(1024));
        this.push(null);
      }
    },
  });
}

/** A PAX extended header block (type x) carrying `records`, followed by its data blocks. */
function paxBlock(records: Record<string, string>): Buffer {
  let body = '';
  for (const [k, v] of Object.entries(records)) {
    const rec = ` ${k}=${v}\n`;
    let len = rec.length + 1;
    while (String(len).length + rec.length !== len) len = String(len).length + rec.length;
    body += `${len}${rec}`;
  }
  const data = Buffer.from(body);
  return Buffer.concat([rawHeader('PaxHeaders/x', 'x', data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

function negativeSizeHeader(name: string): Buffer {
  const b = rawHeader(name, '0', 0);
  b.fill(0xff, 124, 136); // base-256 -1
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return b;
}

test('extractor: extended nasty corpus (symlink chains and loops, 10^5+ entries, huge sizes, PAX overrides)', async (t) => {
  const base = tempDir(t);
  const probe = arena(join(base, 'probe'), false);
  const s = probe.sentinel;
  const sym = (name: string, linkname: string) => ({ header: { name, type: 'symlink' as const, linkname } });
  const file = (name: string, data = 'pwned') => ({ header: { name, type: 'file' as const }, data });
  const chain: ReturnType<typeof sym>[] = [sym('c0', s)];
  for (let i = 1; i < 60; i++) chain.push(sym(`c${i}`, `c${i - 1}`));
  const cases: Array<{ label: string; tar: () => Promise<Buffer | Readable>; expect: RegExp; mode?: 'flatten' | 'overlay'; limits?: ExtractLimits; timeoutMs?: number }> = [
    { label: '60-link symlink chain to the sentinel, then write through its head', tar: () => packWithTarStream([...chain, file('c59/pwned')]), expect: /LAYER_UNSAFE/ },
    { label: 'a directory tree, then a file (PAX path) replacing its parent', tar: () => packWithTarStream([{ header: { name: 'p/q/a', type: 'directory', mode: 0o644 } }, { header: { name: 'x', type: 'file', pax: { path: 'p/q' } }, data: 'later wins' }]), expect: /^ok$/ },
    { label: 'symlink loop, then write through it', tar: () => packWithTarStream([sym('l1', 'l2'), sym('l2', 'l1'), file('l1/pwned')]), expect: /LAYER_UNSAFE/ },
    { label: 'lower-layer absolute symlink used as a directory (re-rooted inside)', tar: () => packWithTarStream([file('lower_abs/pwned')]), expect: /^ok$/, mode: 'flatten' },
    { label: 'lower-layer relative symlink ../sentinel used as a directory', tar: () => packWithTarStream([file('lower_rel/pwned')]), expect: /^ok$/, mode: 'flatten' },
    { label: 'lower-layer symlink loop used as a directory', tar: () => packWithTarStream([file('lower_loop/pwned')]), expect: /LAYER_(UNSAFE|INVALID)/, mode: 'flatten' },
    { label: 'hard link to a lower-layer symlink that points at the sentinel', tar: () => packWithTarStream([{ header: { name: 'h', type: 'link', linkname: 'lower_abs/secret' } }]), expect: /^ok$|LAYER_UNSAFE|LAYER_INVALID/, mode: 'flatten' },
    { label: 'symlink replaced by a file of the same name, then a write (no follow)', tar: () => packWithTarStream([sym('f', `${s}/secret`), file('f', 'replaced')]), expect: /^ok$/ },
    { label: 'PAX linkpath override on a symlink, then write through', tar: () => packWithTarStream([{ header: { name: 'p', type: 'symlink', linkname: 'harmless', pax: { linkpath: s } } }, file('p/pwned')]), expect: /LAYER_UNSAFE/ },
    { label: 'PAX path override onto an earlier symlink name', tar: () => packWithTarStream([sym('q', s), { header: { name: 'innocent', type: 'file', pax: { path: 'q/pwned' } }, data: 'pwned' }]), expect: /LAYER_UNSAFE/ },
    { label: 'PAX size override larger than the data', tar: async () => Buffer.concat([paxBlock({ size: '999999999999' }), rawHeader('big', '0', 5), Buffer.from('pwned'.padEnd(512, '\0')), Buffer.alloc(1024)]), expect: /LAYER_(LIMIT|CORRUPT)/ },
    { label: 'PAX size override negative', tar: async () => Buffer.concat([paxBlock({ size: '-1' }), rawHeader('neg', '0', 5), Buffer.from('pwned'.padEnd(512, '\0')), Buffer.alloc(1024)]), expect: /^ok$|LAYER_(LIMIT|CORRUPT|INVALID)/ },
    { label: 'global PAX header with a traversing path', tar: async () => Buffer.concat([(() => { const b = paxBlock({ path: '../sentinel/global' }); b[156] = 'g'.charCodeAt(0); b.fill(0x20, 148, 156); let sum = 0; for (const x of b.subarray(0, 512)) sum += x; b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii'); return b; })(), rawHeader('plain', '0', 5), Buffer.from('pwned'.padEnd(512, '\0')), Buffer.alloc(1024)]), expect: /^ok$|LAYER_(UNSAFE|CORRUPT)/ },
    { label: 'declared size 2^62 (base-256)', tar: async () => Buffer.concat([rawHeader('huge', '0', 2 ** 62), Buffer.alloc(1024)]), expect: /LAYER_LIMIT/ },
    { label: 'declared size 8^11-1 with 1 KiB of data (truncated)', tar: async () => Buffer.concat([rawHeader('octalmax', '0', 8 ** 11 - 1), Buffer.alloc(1024)]), expect: /LAYER_(CORRUPT|LIMIT)/, limits: { maxEntrySize: 2 ** 40 } },
    { label: 'negative base-256 size', tar: async () => Buffer.concat([negativeSizeHeader('neg'), Buffer.alloc(1024)]), expect: /^ok$|LAYER_(CORRUPT|INVALID|LIMIT)/ },
    { label: 'gzip bomb: 1 GiB of zeros in one file over a 64 MiB byte limit', tar: async () => gzipSync(Buffer.concat([rawHeader('zeros', '0', 2 ** 30), Buffer.alloc(2 ** 26)]), { level: 9 }), expect: /LAYER_(LIMIT|CORRUPT)/, limits: { maxBytes: 2 ** 26 } },
    // The refusal comes at entry 1,001: the rest of the 10^6 headers is never generated or read.
    { label: '10^6 empty-file headers over a 1,000-entry limit', tar: async () => manyEntries(1_000_000, (i) => rawHeader(`f${i}`, '0', 0)), expect: /LAYER_LIMIT/, limits: { maxEntries: 1000 }, mode: 'overlay', timeoutMs: 60_000 },
    { label: `${SOAK ? '10^5' : '2*10^4'} entries of one directory (within the default limits)`, tar: async () => manyEntries(SOAK ? 100_000 : 20_000, () => rawHeader('d/', '5', 0)), expect: /^ok$/, mode: 'overlay', timeoutMs: 120_000 },
  ];
  if (SOAK) cases.push({ label: '10^6 entries of one directory (within the default limits)', tar: async () => manyEntries(1_000_000, () => rawHeader('d/', '5', 0)), expect: /^ok$/, mode: 'overlay', timeoutMs: 1_200_000 });
  let n = 0;
  for (const c of cases) {
    for (const mode of c.mode ? [c.mode] : (['flatten', 'overlay'] as const)) {
      const started = Date.now();
      const outcome = await extractChecked(base, n++, await c.tar(), mode, `${c.label} (${mode})`, c.limits, c.timeoutMs);
      assert.match(outcome, c.expect, `${c.label} (${mode}): ${outcome}`);
      if (/10\^|entries/.test(c.label)) console.log(`# ${c.label} (${mode}): ${outcome} in ${Date.now() - started} ms`);
    }
  }
});
