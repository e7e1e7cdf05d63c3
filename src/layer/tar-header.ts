/**
 * Encoding of one tar entry header: a USTAR header, preceded by a PAX extended header (typeflag `x`)
 * when a field does not fit USTAR (long or non-ASCII names and link names, sizes of 8 GiB and more,
 * big uids/gids) or when xattrs are recorded. Written by hand rather than through tar-stream's pack so
 * that the writer can produce plain Buffers (no per-entry stream, see docs/benchmarks.md) and control
 * every byte: no uname/gname, no atime/ctime, no global header, directories ending in `/`.
 */

/** Tar entry types the writer emits. */
export type TarType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

const TYPEFLAG: Record<TarType, number> = {
  file: 0x30, // '0'
  link: 0x31,
  symlink: 0x32,
  char: 0x33,
  block: 0x34,
  directory: 0x35,
  fifo: 0x36,
};

/** Everything that goes into one header. `name` is the archive path (directories end in `/`). */
export interface TarHeader {
  name: string;
  type: TarType;
  /** Permission bits including setuid/setgid/sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Content size; 0 for everything but regular files. */
  size: number;
  /** Whole seconds since the epoch, >= 0. */
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes, written as PAX `SCHILY.xattr.NAME` records (values are raw bytes). */
  xattrs?: ReadonlyMap<string, Buffer>;
}

export const BLOCK = 512;
const MAX_OCTAL_8 = 0o7777777; // 7 digits + NUL
const MAX_OCTAL_12 = 0o77777777777; // 11 digits + NUL

function isAscii(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /^[\x01-\x7f]*$/.test(s);
}

/** Splits an ASCII name into USTAR prefix (<=155) and name (<=100) at a `/`, or undefined. */
function splitUstar(name: string): { prefix: string; name: string } | undefined {
  if (name.length <= 100) return { prefix: '', name };
  // The prefix must end at a slash; try the shortest suffix that fits, so the prefix is as long as allowed.
  for (let i = name.indexOf('/'); i !== -1; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (prefix.length > 155) return undefined;
    if (rest.length <= 100 && rest.length > 0) return { prefix, name: rest };
  }
  return undefined;
}

function writeOctal(buf: Buffer, off: number, width: number, value: number): void {
  // width includes the terminating NUL. Digit by digit: a string per field was a visible share of
  // packing thousands of small files. Division rather than bit shifts: sizes go past 2^32.
  let v = value;
  for (let i = off + width - 2; i >= off; i--) {
    buf[i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
  buf[off + width - 1] = 0;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  // The length prefix counts itself: find the fixed point.
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'ascii'), body]);
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function ustarBlock(h: TarHeader, name: string, linkname: string, typeflag: number, size: number): Buffer {
  const buf = Buffer.alloc(BLOCK);
  const split = splitUstar(name) ?? { prefix: '', name: name.slice(0, 100) };
  buf.write(split.name, 0, 100, 'utf8');
  writeOctal(buf, 100, 8, h.mode & 0o7777);
  writeOctal(buf, 108, 8, h.uid <= MAX_OCTAL_8 ? h.uid : 0);
  writeOctal(buf, 116, 8, h.gid <= MAX_OCTAL_8 ? h.gid : 0);
  writeOctal(buf, 124, 12, size <= MAX_OCTAL_12 ? size : 0);
  writeOctal(buf, 136, 12, Math.min(Math.max(0, h.mtime), MAX_OCTAL_12));
  buf[156] = typeflag;
  buf.write(linkname.slice(0, 100), 157, 100, 'utf8');
  buf.write('ustar\u000000', 257, 8, 'ascii');
  writeOctal(buf, 329, 8, h.devmajor ?? 0);
  writeOctal(buf, 337, 8, h.devminor ?? 0);
  buf.write(split.prefix, 345, 155, 'utf8');
  // Checksum: sum of all bytes with the checksum field taken as eight spaces.
  buf.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += buf[i]!;
  buf.write(sum.toString(8).padStart(6, '0'), 148, 6, 'ascii');
  buf[154] = 0;
  buf[155] = 0x20;
  return buf;
}

/**
 * The header blocks for `h`: one 512-byte USTAR block, or a PAX `x` header with its records followed
 * by the USTAR block. Deterministic: the same header always gives the same bytes. The caller writes
 * `h.size` content bytes and then `contentPadding(h.size)` zero bytes.
 */
export function encodeHeader(h: TarHeader): Buffer {
  const linkname = h.linkname ?? '';
  const records: Buffer[] = [];
  if (!isAscii(h.name) || !splitUstar(h.name)) records.push(paxRecord('path', Buffer.from(h.name, 'utf8')));
  if (linkname && (!isAscii(linkname) || linkname.length > 100)) records.push(paxRecord('linkpath', Buffer.from(linkname, 'utf8')));
  if (h.size > MAX_OCTAL_12) records.push(paxRecord('size', Buffer.from(String(h.size))));
  if (h.uid > MAX_OCTAL_8) records.push(paxRecord('uid', Buffer.from(String(h.uid))));
  if (h.gid > MAX_OCTAL_8) records.push(paxRecord('gid', Buffer.from(String(h.gid))));
  if (h.xattrs) {
    for (const key of [...h.xattrs.keys()].sort()) records.push(paxRecord(`SCHILY.xattr.${key}`, h.xattrs.get(key)!));
  }
  const main = ustarBlock(h, isAscii(h.name) ? h.name : asciiFallback(h.name), isAscii(linkname) ? linkname : '', TYPEFLAG[h.type], h.size);
  if (records.length === 0) return main;
  const pax = Buffer.concat(records);
  const paxHeader = ustarBlock({ ...h, mode: 0o644, uid: 0, gid: 0, devmajor: 0, devminor: 0 }, paxName(h.name), '', 0x78, pax.length);
  return Buffer.concat([paxHeader, pax, Buffer.alloc(padding(pax.length)), main]);
}

/** Zero bytes needed after `size` content bytes to reach a block boundary. */
export function contentPadding(size: number): number {
  return padding(size);
}

/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

function asciiFallback(name: string): string {
  return name.replace(/[^\x01-\x7f]/g, '_');
}

/** Name of a PAX header entry, Go-style `dir/PaxHeaders.0/base` (readers ignore it). */
function paxName(name: string): string {
  const trimmed = name.endsWith('/') ? name.slice(0, -1) : name;
  const slash = trimmed.lastIndexOf('/');
  const dir = slash === -1 ? '' : trimmed.slice(0, slash + 1);
  const base = trimmed.slice(slash + 1);
  return asciiFallback(`${dir}PaxHeaders.0/${base}`).slice(0, 100);
}
