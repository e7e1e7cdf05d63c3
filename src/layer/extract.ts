/**
 * The safe layer extractor. Every entry is placed through SafeRoot (no `..`, no path through a symlink
 * the archive planted, existing non-directories replaced rather than followed, files created with
 * O_EXCL|O_NOFOLLOW), so nothing is ever written outside the target, whatever the archive says.
 */
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, constants as C, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lutimesSync, mkdirSync, openSync, readdirSync, symlinkSync, utimesSync, writeSync, promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { DimgError, messageOf } from '../errors.js';
import { decompress } from './compression.js';
import { AUFS_META_PREFIX, OPAQUE_MARKER, WHITEOUT_PREFIX, entryComponents, unsafeEntry } from './paths.js';
import { lstatOrUndefined } from './root-walk.js';
import { SafeRoot } from './safe-root.js';
import { setXattrs, type XattrWrite } from './xattr.js';

/** Caps that stop archive bombs; each breach is LAYER_LIMIT naming the entry. */
export interface ExtractLimits {
  /** Most entries (headers) accepted. Default 4,000,000. */
  maxEntries?: number;
  /** Most content bytes in all regular files together. Default 256 GiB. */
  maxBytes?: number;
  /** Largest declared size of one entry. Default 64 GiB. */
  maxEntrySize?: number;
}

/** Options of extractLayer. */
export interface ExtractOptions {
  /**
   * `flatten`: apply whiteouts to what is already in `target` (unpacking a whole image into one rootfs).
   * `overlay`: `target` is a fresh overlay lowerdir; `.wh.NAME` becomes a 0/0 character device and
   * `.wh..wh..opq` the `opaque=y` xattr on its directory. Markers are never written as files.
   */
  mode: 'flatten' | 'overlay';
  /** Create character/block devices (default false: they are refused as LAYER_UNSAFE). */
  allowDevices?: boolean;
  limits?: ExtractLimits;
  /** Apply uid/gid from the archive (default: when running as root). */
  chown?: boolean;
  /** xattr namespace of the overlay mount that will use the lowerdir (default `trusted`). */
  overlayXattrPrefix?: 'trusted' | 'user';
  /** How errors name the archive, e.g. the layer digest (default `layer`). */
  subject?: string;
}

/** What an extraction did. */
export interface ExtractResult {
  entries: number;
  /** Content bytes written to regular files. */
  bytes: number;
  /** Whiteouts applied (deletions when flattening, devices/xattrs in overlay mode). */
  whiteouts: number;
}

type Header = tarStream.Header;
/** An entry's content as tar-stream hands it out. */
type Body = AsyncIterable<Buffer>;

const DEFAULT_LIMITS: Required<ExtractLimits> = { maxEntries: 4_000_000, maxBytes: 256 * 2 ** 30, maxEntrySize: 64 * 2 ** 30 };
const FILE_FLAGS = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;
const XATTR_PREFIX = 'SCHILY.xattr.';

/**
 * Extracts the layer tar `tar` (plain, gzip, zstd, xz or bzip2; see decompress) into `target`
 * (created if missing). Guarantees: nothing outside `target` is created, changed or followed; every
 * refused entry (`..`, escaping or absolute hardlink targets are re-rooted or refused, writes through
 * a symlink planted by the archive, bare or dot whiteouts, devices unless allowed, limits exceeded,
 * unknown entry types) fails the whole extraction with a DimgError naming the entry (LAYER_UNSAFE,
 * LAYER_LIMIT, LAYER_INVALID), leaving `target` partly written for the caller to discard. Modes,
 * uid/gid (when chown), mtimes (directories' after all entries), symlink ownership and PAX
 * `SCHILY.xattr.*` (except `*.overlay.*`; EPERM/ENOTSUP tolerated) are applied.
 */
export async function extractLayer(tar: Readable, target: string, opts: ExtractOptions): Promise<ExtractResult> {
  await fs.mkdir(target, { recursive: true });
  const x = new Extraction(new SafeRoot(await fs.realpath(target)), opts);
  const input = await decompress(tar, opts.subject ?? 'layer');
  const ex = tarStream.extract();
  captureRawPax(ex);
  input.on('error', (err) => ex.destroy(err));
  input.pipe(ex);
  try {
    for await (const entry of ex) {
      await x.entry(entry.header, entry as unknown as Body);
    }
    await x.finish();
  } catch (err) {
    input.destroy();
    ex.destroy();
    if (err instanceof DimgError) throw err;
    if (typeof (err as NodeJS.ErrnoException).syscall === 'string') {
      // The file system refused (no space, read-only…): not the archive's fault.
      throw new DimgError('LAYER_EXTRACT_FAILED', `${opts.subject ?? 'layer'}: extracting into ${target} failed: ${messageOf(err)}`, 'check free space and permissions of the target directory', { cause: err });
    }
    throw new DimgError('LAYER_CORRUPT', `${opts.subject ?? 'layer'}: cannot read the tar: ${messageOf(err)}`, 'the layer archive is damaged or not a tar; fetch it again');
  }
  return x.result;
}

class Extraction {
  readonly result: ExtractResult = { entries: 0, bytes: 0, whiteouts: 0 };
  private readonly limits: Required<ExtractLimits>;
  private readonly chown: boolean;
  /** Paths this layer created, so an opaque marker only hides what came from below. */
  private readonly created = new Set<string>();
  private readonly dirTimes = new Map<string, number>();
  private readonly xattrs: Array<XattrWrite & { rel: string; entry: string }> = [];
  private readonly whiteoutDevs: Array<{ rel: string; parent: string; entry: string; uid: number; gid: number }> = [];
  private readonly opaqueDirs = new Map<string, string>();

  constructor(
    private readonly root: SafeRoot,
    private readonly opts: ExtractOptions,
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.chown = opts.chown ?? process.getuid?.() === 0;
  }

  async entry(h: Header, body: Body): Promise<void> {
    const name = h.name;
    if (++this.result.entries > this.limits.maxEntries) {
      throw new DimgError('LAYER_LIMIT', `layer entry ${JSON.stringify(name)}: the archive has more than ${this.limits.maxEntries} entries`, 'raise the entry limit only if you trust this layer');
    }
    if (h.size !== undefined && h.size > this.limits.maxEntrySize) {
      throw new DimgError('LAYER_LIMIT', `layer entry ${JSON.stringify(name)}: declared size ${h.size} exceeds the limit of ${this.limits.maxEntrySize} bytes`, 'raise the size limit only if you trust this layer');
    }
    const parts = entryComponents(name);
    if (parts.length === 0) {
      // The root itself ("./"): nothing to create; its attributes belong to the caller's directory.
      await drain(body);
      return;
    }
    const base = parts[parts.length - 1]!;
    if (base.startsWith(WHITEOUT_PREFIX)) {
      await drain(body);
      await this.whiteout(name, parts.slice(0, -1), base, h);
      return;
    }
    await this.place(name, parts, h, body);
  }

  private async place(name: string, parts: string[], h: Header, body: Body): Promise<void> {
    const parent = this.root.resolveDir(parts.slice(0, -1), name, true);
    const rel = parent ? `${parent}/${parts[parts.length - 1]}` : parts[parts.length - 1]!;
    const abs = this.root.abs(rel);
    const existing = lstatOrUndefined(abs);
    const isDir = h.type === 'directory';
    if (existing && !(isDir && existing.isDirectory())) this.root.remove(rel);
    this.created.add(rel);
    const mode = (h.mode ?? 0o644) & 0o7777;
    const uid = h.uid ?? 0;
    const gid = h.gid ?? 0;
    const mtime = h.mtime ? h.mtime.getTime() / 1000 : 0;
    switch (h.type) {
      case 'directory':
        if (!existing?.isDirectory()) mkdirSync(abs, { mode: 0o700 });
        this.root.markDir(rel);
        if (this.chown) lchownSync(abs, uid, gid);
        chmodSync(abs, mode);
        this.dirTimes.set(rel, mtime);
        await drain(body);
        break;
      case 'file':
      case 'contiguous-file':
        await this.writeFile(name, abs, body, { mode, uid, gid, mtime });
        break;
      case 'symlink':
        await drain(body);
        // symlink(2) refuses an empty target (ENOENT): the archive's fault, not the file system's.
        if (!h.linkname) throw new DimgError('LAYER_INVALID', `layer entry ${JSON.stringify(name)}: symlink without a target`, 'the layer archive is damaged; rebuild or fetch it again');
        symlinkSync(h.linkname, abs);
        this.root.planted.add(rel);
        if (this.chown) lchownSync(abs, uid, gid);
        lutimesSync(abs, mtime, mtime);
        break;
      case 'link':
        await drain(body);
        await this.hardlink(name, abs, h.linkname ?? '');
        break;
      case 'character-device':
      case 'block-device':
      case 'fifo':
        await drain(body);
        if (h.type !== 'fifo' && !this.opts.allowDevices) {
          throw unsafeEntry(name, `is a ${h.type.replace('-', ' ')} (${h.devmajor ?? 0}:${h.devminor ?? 0}); device nodes are refused`, 'pass allowDevices only for a trusted layer');
        }
        await mknod(abs, h.type === 'fifo' ? ['p'] : [h.type === 'character-device' ? 'c' : 'b', String(h.devmajor ?? 0), String(h.devminor ?? 0)], name);
        if (this.chown) lchownSync(abs, uid, gid);
        chmodSync(abs, mode);
        utimesSync(abs, mtime, mtime);
        break;
      default:
        throw new DimgError('LAYER_INVALID', `layer entry ${JSON.stringify(name)}: unsupported entry type ${String(h.type ?? 'unknown')}`, 'layers may hold files, directories, links, devices and FIFOs only');
    }
    this.collectXattrs(name, rel, h);
  }

  private async writeFile(name: string, abs: string, body: Body, a: { mode: number; uid: number; gid: number; mtime: number }): Promise<void> {
    // Synchronous writes: a layer's many small files cost far less inline than through the thread
    // pool, and a big file arrives in tar-stream's chunks anyway.
    const fd = openSync(abs, FILE_FLAGS, 0o600);
    try {
      for await (const chunk of body) {
        this.result.bytes += chunk.length;
        if (this.result.bytes > this.limits.maxBytes) {
          throw new DimgError('LAYER_LIMIT', `layer entry ${JSON.stringify(name)}: the archive holds more than ${this.limits.maxBytes} bytes`, 'raise the byte limit only if you trust this layer');
        }
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
      }
      // chown before chmod: chown clears setuid/setgid bits.
      if (this.chown) fchownSync(fd, a.uid, a.gid);
      fchmodSync(fd, a.mode);
      futimesSync(fd, a.mtime, a.mtime);
    } finally {
      closeSync(fd);
    }
  }

  private async hardlink(name: string, abs: string, linkname: string): Promise<void> {
    if (linkname === '') throw unsafeEntry(name, 'is a hard link without a target');
    // Refused rather than re-rooted (moby re-roots kaniko's absolute targets): ambiguity is not worth it.
    if (linkname.startsWith('/')) throw unsafeEntry(name, `its hard link target ${JSON.stringify(linkname)} is an absolute path`);
    let parts: string[];
    try {
      parts = entryComponents(linkname, name);
    } catch {
      throw unsafeEntry(name, `its hard link target ${JSON.stringify(linkname)} escapes the target directory`);
    }
    if (parts.length === 0) throw unsafeEntry(name, 'is a hard link to the root directory');
    const parent = this.root.resolveDir(parts.slice(0, -1), name, false);
    const rel = parent === undefined ? undefined : parent ? `${parent}/${parts[parts.length - 1]}` : parts[parts.length - 1]!;
    const st = rel === undefined ? undefined : lstatOrUndefined(this.root.abs(rel));
    if (!st || rel === undefined) throw new DimgError('LAYER_INVALID', `layer entry ${JSON.stringify(name)}: hard link target ${JSON.stringify(linkname)} does not exist`, 'a hard link must follow the entry it points to');
    if (st.isDirectory()) throw unsafeEntry(name, `is a hard link to a directory (${JSON.stringify(linkname)})`);
    // link(2) does not follow a symlink target: the link names the same inode as `rel` itself.
    linkSync(this.root.abs(rel), abs);
  }

  private async whiteout(name: string, parentParts: string[], base: string, h: Header): Promise<void> {
    if (base === OPAQUE_MARKER) {
      this.result.whiteouts++;
      if (this.opts.mode === 'overlay') {
        const dir = this.root.resolveDir(parentParts, name, true);
        this.opaqueDirs.set(dir!, name);
      } else {
        const dir = this.root.resolveDir(parentParts, name, false);
        if (dir !== undefined) this.clearLowerChildren(dir);
      }
      return;
    }
    if (base.startsWith(AUFS_META_PREFIX)) return; // AUFS bookkeeping such as .wh..wh.plnk: not content
    const victim = base.slice(WHITEOUT_PREFIX.length);
    if (victim === '' || victim === '.' || victim === '..') throw unsafeEntry(name, 'is an invalid whiteout (it names no file)');
    this.result.whiteouts++;
    if (this.opts.mode === 'overlay') {
      const dir = this.root.resolveDir(parentParts, name, true)!;
      this.whiteoutDevs.push({ rel: dir ? `${dir}/${victim}` : victim, parent: dir, entry: name, uid: h.uid ?? 0, gid: h.gid ?? 0 });
      return;
    }
    const dir = this.root.resolveDir(parentParts, name, false);
    if (dir === undefined) return; // the parent does not exist below: nothing to delete
    this.root.remove(dir ? `${dir}/${victim}` : victim);
  }

  /** Flatten mode's opaque marker: delete the children of `dir` that this layer did not create. */
  private clearLowerChildren(dir: string): void {
    for (const child of readdirSync(this.root.abs(dir))) {
      const rel = dir ? `${dir}/${child}` : child;
      if (!this.created.has(rel) && !this.root.made.has(rel)) this.root.remove(rel);
    }
  }

  private collectXattrs(name: string, rel: string, h: Header): void {
    const raw = (h as Header & { [RAW_PAX]?: Buffer })[RAW_PAX];
    if (!raw) return;
    for (const [key, value] of parsePaxRecords(raw, name)) {
      if (!key.startsWith(XATTR_PREFIX)) continue;
      const attr = key.slice(XATTR_PREFIX.length);
      // An archive must never forge overlay whiteouts or opaque dirs through xattrs.
      if (/^[a-z]+\.overlay\./.test(attr)) continue;
      this.xattrs.push({ path: this.root.abs(rel), name: attr, value, rel, entry: name });
    }
  }

  /** Batched work that ran after the last entry: whiteout devices, xattrs, then directory mtimes. */
  async finish(): Promise<void> {
    const devs = [];
    const seen = new Set<string>();
    for (const w of this.whiteoutDevs) {
      // The same whiteout listed twice must not be mknod'ed twice (EEXIST).
      if (seen.has(w.rel)) continue;
      seen.add(w.rel);
      this.root.verifyDir(w.parent, w.entry);
      // A later entry of the same archive recreated the path: the later entry wins.
      if (lstatOrUndefined(this.root.abs(w.rel))) continue;
      devs.push(w);
    }
    await mknodWhiteouts(devs.map((d) => this.root.abs(d.rel)));
    if (this.chown) for (const d of devs) if (d.uid !== 0 || d.gid !== 0) lchownSync(this.root.abs(d.rel), d.uid, d.gid);
    const prefix = this.opts.overlayXattrPrefix ?? 'trusted';
    const opaque: XattrWrite[] = [];
    for (const [dir, entry] of this.opaqueDirs) {
      this.root.verifyDir(dir, entry);
      opaque.push({ path: this.root.abs(dir), name: `${prefix}.overlay.opaque`, value: Buffer.from('y') });
    }
    await setXattrs(opaque, false);
    for (const x of this.xattrs) this.root.verifyDir(x.rel.split('/').slice(0, -1).join('/'), x.entry);
    await setXattrs(this.xattrs, true);
    for (const [rel, t] of this.dirTimes) {
      const st = lstatOrUndefined(this.root.abs(rel));
      if (st?.isDirectory()) utimesSync(this.root.abs(rel), t, t);
    }
  }
}

const RAW_PAX = Symbol('rawPax');

/**
 * tar-stream decodes PAX values as UTF-8, which corrupts binary xattrs such as security.capability.
 * This keeps each PAX header's raw bytes and attaches them to the entry they describe, by wrapping
 * two of its extractor's methods (checked here, and covered by a binary-xattr test).
 */
function captureRawPax(ex: unknown): void {
  const x = ex as {
    _decodeLongHeader?: (buf: Buffer) => unknown;
    _applyLongHeaders?: () => unknown;
    _header: (Header & { [RAW_PAX]?: Buffer }) | null;
  };
  const decode = x._decodeLongHeader;
  const apply = x._applyLongHeaders;
  if (typeof decode !== 'function' || typeof apply !== 'function') {
    throw new Error('tar-stream internals changed: cannot read raw PAX records (update src/layer/extract.ts)');
  }
  let pending: Buffer | undefined;
  x._decodeLongHeader = function (this: typeof x, buf: Buffer) {
    if ((this._header?.type as string | undefined) === 'pax-header') pending = Buffer.from(buf);
    return decode.call(this, buf);
  };
  x._applyLongHeaders = function (this: typeof x) {
    const r = apply.call(this);
    if (pending && this._header) this._header[RAW_PAX] = pending;
    pending = undefined;
    return r;
  };
}

/** PAX records (`LEN key=value\n`) with values as raw bytes. */
export function parsePaxRecords(buf: Buffer, entry: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < buf.length) {
    const space = buf.indexOf(0x20, off);
    const len = space === -1 ? NaN : Number(buf.toString('latin1', off, space));
    if (!Number.isInteger(len) || len <= 0 || off + len > buf.length) {
      if (buf.subarray(off).every((b) => b === 0)) break;
      throw new DimgError('LAYER_CORRUPT', `layer entry ${JSON.stringify(entry)}: malformed PAX record`, 'the layer archive is damaged');
    }
    const rec = buf.subarray(space + 1, off + len - 1); // drop the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.toString('utf8', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    off += len;
  }
  return out;
}

async function drain(body: Body): Promise<void> {
  for await (const _ of body) { /* metadata-only entries have no body; a lying one is skipped */ }
}

function runShell(args: string[], what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(args[0]!, args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => { stderr += d; });
    child.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT'
      ? new DimgError('LAYER_TOOL_MISSING', `${args[0]} is not installed (needed for ${what})`, 'install it: apt-get install -y coreutils')
      : err));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new DimgError('LAYER_EXTRACT_FAILED', `${what} failed: ${stderr.trim() || `exit ${code}`}`, 'whiteout devices and device nodes need root'))));
  });
}

function mknod(abs: string, spec: string[], entry: string): Promise<void> {
  return runShell(['mknod', '--', abs, ...spec], `creating ${JSON.stringify(entry)}`);
}

/** Creates 0/0 character devices at `paths` with one shell per ~64 KiB of arguments, not one process per path. */
async function mknodWhiteouts(paths: string[]): Promise<void> {
  let batch: string[] = [];
  let len = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    await runShell(['sh', '-c', 'for p; do mknod -- "$p" c 0 0 || exit 1; done', 'sh', ...batch], 'creating overlay whiteouts');
    batch = [];
    len = 0;
  };
  for (const p of paths) {
    batch.push(p);
    len += Buffer.byteLength(p) + 1;
    if (len > 64 * 1024) await flush();
  }
  await flush();
}
