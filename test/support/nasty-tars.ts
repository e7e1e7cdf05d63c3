/**
 * Malicious and malformed layer tarballs for the extractor's safety tests. Most are written with
 * tar-stream's pack (an implementation independent of dimg's writer); the ones tar-stream refuses to
 * write (lying sizes, GNU long names) are built from raw USTAR blocks here.
 */
import tarStream from 'tar-stream';
import type { ErrorCode } from '../../src/errors.js';

/** One hostile archive and how the extractor must refuse it. */
export interface NastyTar {
  label: string;
  tar: Buffer;
  /** Expected DimgError code. */
  code: ErrorCode;
  /** Must match the error message (which names the entry). */
  message: RegExp;
  /** Extraction limits to use (otherwise the defaults). */
  limits?: { maxEntries?: number; maxBytes?: number; maxEntrySize?: number };
}

type Entry = { header: Partial<tarStream.Header> & { name: string }; data?: string };

/** Packs entries with tar-stream into one Buffer. */
export async function packWithTarStream(entries: Entry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(Buffer.from(c as Uint8Array));
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      pack.entry({ mtime: new Date(0), ...e.header }, e.data ?? '', (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** A raw USTAR header block; sizes beyond 11 octal digits use the base-256 form real tars use. */
export function rawHeader(name: string, typeflag: string, size: number, linkname = ''): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, 'utf8');
  b.write('0000644\0', 100, 'ascii');
  b.write('0000000\0', 108, 'ascii');
  b.write('0000000\0', 116, 'ascii');
  if (size < 8 ** 11) {
    b.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  } else {
    b[124] = 0x80;
    let n = BigInt(size);
    for (let i = 135; i > 124; i--) {
      b[i] = Number(n & 0xffn);
      n >>= 8n;
    }
  }
  b.write('00000000000\0', 136, 'ascii');
  b.write(typeflag, 156, 1, 'ascii');
  b.write(linkname, 157, 100, 'utf8');
  b.write('ustar\u000000', 257, 8, 'ascii');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return b;
}

function block(data: string): Buffer {
  const raw = Buffer.from(data);
  return Buffer.concat([raw, Buffer.alloc((512 - (raw.length % 512)) % 512)]);
}

/**
 * Every hostile archive the extractor must refuse. `sentinelAbs` is the absolute path of a directory
 * beside the extraction target (`<parent>/sentinel`, target `<parent>/target`) holding a file `secret`:
 * each archive tries to reach it.
 */
export async function nastyTars(sentinelAbs: string): Promise<NastyTar[]> {
  const f = (name: string, data = 'pwned'): Entry => ({ header: { name, type: 'file', mode: 0o644 }, data });
  const sym = (name: string, linkname: string): Entry => ({ header: { name, type: 'symlink', linkname, mode: 0o777 } });
  const many: Entry[] = [];
  for (let i = 0; i < 60; i++) many.push(f(`f${String(i).padStart(3, '0')}`, 'x'));
  return [
    { label: '../ traversal', tar: await packWithTarStream([f('../sentinel/pwned')]), code: 'LAYER_UNSAFE', message: /"\.\.\/sentinel\/pwned".*escape/ },
    { label: 'traversal in the middle', tar: await packWithTarStream([f('a/../../sentinel/pwned')]), code: 'LAYER_UNSAFE', message: /a\/\.\.\/\.\.\/sentinel\/pwned/ },
    { label: 'symlink then write through it (absolute)', tar: await packWithTarStream([sym('link', sentinelAbs), f('link/pwned')]), code: 'LAYER_UNSAFE', message: /"link\/pwned".*symlink created earlier/ },
    { label: 'symlink then write through it (relative)', tar: await packWithTarStream([sym('link', '../sentinel'), f('link/pwned')]), code: 'LAYER_UNSAFE', message: /"link\/pwned".*symlink/ },
    { label: 'symlink then directory through it', tar: await packWithTarStream([sym('link', sentinelAbs), { header: { name: 'link/sub/', type: 'directory', mode: 0o755 } }]), code: 'LAYER_UNSAFE', message: /"link\/sub\/".*symlink/ },
    { label: 'symlink chain escape', tar: await packWithTarStream([sym('b', sentinelAbs), sym('a', 'b'), f('a/pwned')]), code: 'LAYER_UNSAFE', message: /"a\/pwned".*symlink/ },
    { label: 'symlink in a subdirectory, then write through', tar: await packWithTarStream([{ header: { name: 'd/', type: 'directory', mode: 0o755 } }, sym('d/up', '../..'), f('d/up/sentinel/pwned')]), code: 'LAYER_UNSAFE', message: /"d\/up\/sentinel\/pwned".*symlink/ },
    { label: 'hardlink to ../outside', tar: await packWithTarStream([{ header: { name: 'h', type: 'link', linkname: '../sentinel/secret' } }]), code: 'LAYER_UNSAFE', message: /"h".*hard link target "\.\.\/sentinel\/secret"/ },
    { label: 'hardlink to an absolute path', tar: await packWithTarStream([{ header: { name: 'h', type: 'link', linkname: `${sentinelAbs}/secret` } }]), code: 'LAYER_UNSAFE', message: /"h".*absolute/ },
    { label: 'hardlink through a planted symlink', tar: await packWithTarStream([sym('s', sentinelAbs), { header: { name: 'h', type: 'link', linkname: 's/secret' } }]), code: 'LAYER_UNSAFE', message: /"h".*symlink/ },
    { label: 'device node', tar: await packWithTarStream([{ header: { name: 'dev/mem', type: 'character-device', devmajor: 1, devminor: 1, mode: 0o600 } }]), code: 'LAYER_UNSAFE', message: /"dev\/mem".*device/ },
    { label: 'block device node', tar: await packWithTarStream([{ header: { name: 'sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o600 } }]), code: 'LAYER_UNSAFE', message: /"sda".*block device/ },
    { label: 'huge declared size', tar: Buffer.concat([rawHeader('huge', '0', 2 ** 40), Buffer.alloc(4096), Buffer.alloc(1024)]), code: 'LAYER_LIMIT', message: /"huge".*1099511627776/ },
    { label: 'size over a configured entry limit', tar: await packWithTarStream([f('big', 'x'.repeat(5000))]), code: 'LAYER_LIMIT', message: /"big"/, limits: { maxEntrySize: 4096 } },
    { label: 'bytes over the total limit', tar: await packWithTarStream([f('one', 'x'.repeat(3000)), f('two', 'x'.repeat(3000))]), code: 'LAYER_LIMIT', message: /"two".*more than 5000 bytes/, limits: { maxBytes: 5000 } },
    { label: 'too many entries', tar: await packWithTarStream(many), code: 'LAYER_LIMIT', message: /"f050".*more than 50 entries/, limits: { maxEntries: 50 } },
    { label: 'PAX path override to ../../x', tar: await packWithTarStream([{ header: { name: 'innocent', type: 'file', pax: { path: '../../x' } }, data: 'pwned' }]), code: 'LAYER_UNSAFE', message: /"\.\.\/\.\.\/x"/ },
    { label: 'GNU long name with traversal', tar: Buffer.concat([rawHeader('././@LongLink', 'L', 16), block('../sentinel/gnu\0'), rawHeader('short', '0', 5), block('pwned'), Buffer.alloc(1024)]), code: 'LAYER_UNSAFE', message: /"\.\.\/sentinel\/gnu"/ },
    { label: 'bare .wh. whiteout', tar: await packWithTarStream([f('dir/.wh.', '')]), code: 'LAYER_UNSAFE', message: /"dir\/\.wh\.".*invalid whiteout/ },
    { label: '.wh.. whiteout', tar: await packWithTarStream([f('.wh..', '')]), code: 'LAYER_UNSAFE', message: /"\.wh\.\.".*invalid whiteout/ },
    { label: 'NUL in a PAX path', tar: await packWithTarStream([{ header: { name: 'n', type: 'file', pax: { path: 'a\u0000b' } }, data: 'x' }]), code: 'LAYER_UNSAFE', message: /NUL/ },
  ];
}
