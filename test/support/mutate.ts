/**
 * Input mutation for property tests: fast-check arbitraries that damage a seed (byte flips, cuts,
 * splices, repeated ranges) the way corrupt downloads and hostile authors do, plus tar (un)packing of
 * whole entry lists so structured mutations can rewrite one entry and repack the rest unchanged.
 */
import fc from 'fast-check';
import tarStream from 'tar-stream';
import { createHash } from 'node:crypto';
import { readdirSync, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/** One edit applied to a byte buffer. Positions are fractions of the length so they fit any seed. */
export type ByteEdit =
  | { op: 'flip'; at: number; xor: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'cut'; at: number }
  | { op: 'delete'; at: number; len: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'repeat'; at: number; len: number; times: number };

const frac = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

/** An arbitrary single edit. */
export const byteEdit: fc.Arbitrary<ByteEdit> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: frac, xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ op: fc.constant('set' as const), at: frac, value: fc.constantFrom(0, 0x2f, 0x2e, 0x30, 0x37, 0x80, 0xff, 0x20) }),
  fc.record({ op: fc.constant('cut' as const), at: frac }),
  fc.record({ op: fc.constant('delete' as const), at: frac, len: fc.integer({ min: 1, max: 1024 }) }),
  fc.record({ op: fc.constant('insert' as const), at: frac, bytes: fc.uint8Array({ minLength: 1, maxLength: 600 }) }),
  fc.record({ op: fc.constant('repeat' as const), at: frac, len: fc.integer({ min: 1, max: 1024 }), times: fc.integer({ min: 2, max: 8 }) }),
);

/** Between one and `max` edits. */
export const byteEdits = (max = 4): fc.Arbitrary<ByteEdit[]> => fc.array(byteEdit, { minLength: 1, maxLength: max });

/** Applies edits in order (each position taken relative to the buffer as it then is). */
export function applyEdits(seed: Buffer, edits: readonly ByteEdit[]): Buffer {
  let b = Buffer.from(seed);
  for (const e of edits) {
    const at = Math.floor(e.at * Math.max(1, b.length));
    switch (e.op) {
      case 'flip':
        if (b.length > 0) b[at % b.length] = (b[at % b.length]! ^ e.xor) & 0xff;
        break;
      case 'set':
        if (b.length > 0) b[at % b.length] = e.value;
        break;
      case 'cut':
        b = b.subarray(0, at);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.len)]);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), Buffer.from(e.bytes), b.subarray(at)]);
        break;
      case 'repeat': {
        const piece = b.subarray(at, at + e.len);
        b = Buffer.concat([b.subarray(0, at), ...Array.from({ length: e.times }, () => piece), b.subarray(at + e.len)]);
        break;
      }
    }
  }
  return b;
}

/** A tar entry with its content held in memory. */
export interface TarEntry {
  header: tarStream.Header;
  data: Buffer;
}

/** Reads every entry of a plain tar into memory (tests only: archives of a few MiB). */
export async function unpackTar(tar: Buffer): Promise<TarEntry[]> {
  const ex = tarStream.extract();
  const out: TarEntry[] = [];
  const feeding = new Promise<void>((resolve, reject) => {
    ex.on('error', reject);
    ex.on('finish', () => resolve());
  });
  ex.end(tar);
  for await (const entry of ex) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    out.push({ header: { ...entry.header }, data: Buffer.concat(chunks) });
  }
  await feeding;
  return out;
}

/** Packs entries with tar-stream (sizes taken from the data; symlinks and links carry no data). */
export async function packTar(entries: readonly TarEntry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(Buffer.from(c as Uint8Array));
  })();
  for (const e of entries) {
    const header: Partial<tarStream.Header> & { name: string } = { ...e.header };
    const data = header.type === 'file' || header.type === undefined ? e.data : undefined;
    if (data) header.size = data.length;
    else delete header.size;
    await new Promise<void>((resolve, reject) => pack.entry(header, data ?? '', (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** A stable fingerprint of everything under `dir` (names, types, modes, sizes, contents, link targets). */
export function treeFingerprint(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      h.update(`${rel}/${name}\0${st.mode}\0${st.size}\0`);
      if (st.isSymbolicLink()) h.update(readlinkSync(p));
      else if (st.isFile()) h.update(readFileSync(p));
      else if (st.isDirectory()) walk(p, `${rel}/${name}`);
    }
  };
  walk(dir, '');
  return h.digest('hex');
}

/** Rejects with a HANG error when `p` takes longer than `ms` (the property then fails, naming `what`). */
export async function withinTime<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HANG: ${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}
