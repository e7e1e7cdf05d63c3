/**
 * Extended attributes through the `attr` package's tools, because Node 20 has no xattr API and we
 * avoid native modules. Each operation is ONE process for a whole tree or batch: `getfattr -R --dump`
 * to read, `setfattr --restore` to write, both speaking getfattr's dump format (file names with
 * octal escapes, values in hex).
 */
import { spawn } from 'node:child_process';
import { DimgError } from '../errors.js';

/**
 * Which directories of an overlay upper dir are opaque, which files are xattr-style whiteouts, and
 * the xattrs worth recording in the layer (`security.capability`, as Docker records, so a RUN's
 * setcap survives).
 */
export interface OverlayXattrs {
  opaque: Set<string>;
  whiteout: Set<string>;
  recorded: Map<string, Map<string, Buffer>>;
}

/** Xattrs a layer records from disk. */
export const RECORDED_XATTRS = ['security.capability'];

function attrMissing(tool: string): DimgError {
  return new DimgError('LAYER_TOOL_MISSING', `${tool} is not installed (needed for overlay xattrs)`, 'install it: apt-get install -y attr');
}

function runTool(tool: string, args: string[], input?: Buffer): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => { stderr += d; });
    child.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? attrMissing(tool) : err));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out), stderr }));
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

/** Undoes getfattr's quoting: `\ooo` octal escapes, on raw bytes (names may be any UTF-8). */
export function unquoteName(raw: Buffer): string {
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i]!;
    if (b === 0x5c && i + 3 < raw.length && /^[0-7]{3}$/.test(raw.toString('latin1', i + 1, i + 4))) {
      bytes.push(parseInt(raw.toString('latin1', i + 1, i + 4), 8));
      i += 3;
    } else {
      bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Quotes a path for a dump file: every byte that could confuse the parser becomes `\ooo`. */
export function quoteName(path: string): string {
  let out = '';
  for (const b of Buffer.from(path, 'utf8')) {
    if (b <= 0x20 || b === 0x5c || b === 0x3d || b >= 0x7f) out += `\\${b.toString(8).padStart(3, '0')}`;
    else out += String.fromCharCode(b);
  }
  return out;
}

/** Parses `getfattr --dump -e hex` output into path → (name → value). */
export function parseDump(dump: Buffer): Map<string, Map<string, Buffer>> {
  const result = new Map<string, Map<string, Buffer>>();
  let current: Map<string, Buffer> | undefined;
  let start = 0;
  while (start < dump.length) {
    let end = dump.indexOf(0x0a, start);
    if (end === -1) end = dump.length;
    const line = dump.subarray(start, end);
    start = end + 1;
    if (line.length === 0) continue;
    const text = line.toString('latin1');
    if (text.startsWith('# file: ')) {
      current = new Map();
      result.set(unquoteName(line.subarray('# file: '.length)), current);
      continue;
    }
    const eq = text.indexOf('=');
    if (!current || eq === -1) continue;
    const value = text.slice(eq + 1);
    current.set(text.slice(0, eq), value.startsWith('0x') ? Buffer.from(value.slice(2), 'hex') : Buffer.from(value.replace(/^"|"$/g, ''), 'latin1'));
  }
  return result;
}

/**
 * Reads the overlay xattrs of every object below `root` with ONE `getfattr -R` (symlinks not
 * followed). Opaque = `<prefix>.overlay.opaque` is `y`; whiteout = `<prefix>.overlay.whiteout` present.
 * Paths in the result are `root` joined with the relative path, as the walker builds them.
 */
export async function readOverlayXattrs(root: string, prefix: 'trusted' | 'user'): Promise<OverlayXattrs> {
  const pattern = `^(${prefix}\\.overlay\\.(opaque|whiteout)|security\\.capability)$`;
  const r = await runTool('getfattr', ['-R', '-h', '--absolute-names', '-d', '-e', 'hex', '-m', pattern, '--', root]);
  if (r.code !== 0) {
    throw new DimgError('LAYER_XATTR_FAILED', `reading overlay xattrs under ${root} failed: ${r.stderr.trim()}`, 'the directory must be an overlay upper dir on a file system with xattr support');
  }
  const out: OverlayXattrs = { opaque: new Set(), whiteout: new Set(), recorded: new Map() };
  for (const [path, attrs] of parseDump(r.stdout)) {
    const keep = new Map([...attrs].filter(([name]) => RECORDED_XATTRS.includes(name)));
    if (keep.size > 0) out.recorded.set(path, keep);
    const opaque = attrs.get(`${prefix}.overlay.opaque`);
    if (opaque && opaque.toString('latin1') === 'y') out.opaque.add(path);
    if (attrs.has(`${prefix}.overlay.whiteout`)) out.whiteout.add(path);
  }
  return out;
}

/** One xattr to set on one path. */
export interface XattrWrite {
  path: string;
  name: string;
  value: Buffer;
}

/**
 * Sets many xattrs with ONE `setfattr -h --restore` (symlinks themselves, never their targets).
 * With `tolerant`, per-attribute "Operation not permitted/supported" errors are ignored (as Docker
 * does for layer xattrs); any other failure is LAYER_XATTR_FAILED naming the first complaint.
 */
export async function setXattrs(writes: XattrWrite[], tolerant: boolean): Promise<void> {
  if (writes.length === 0) return;
  const lines: string[] = [];
  for (const w of writes) lines.push(`# file: ${quoteName(w.path)}`, `${w.name}=0x${w.value.toString('hex')}`, '');
  const r = await runTool('setfattr', ['-h', '--restore=-'], Buffer.from(lines.join('\n'), 'latin1'));
  if (r.code === 0) return;
  const complaints = r.stderr.split('\n').filter((l) => l.trim() !== '');
  const serious = tolerant ? complaints.filter((l) => !/Operation not (permitted|supported)/.test(l)) : complaints;
  if (serious.length > 0 || complaints.length === 0) {
    throw new DimgError('LAYER_XATTR_FAILED', `setting xattrs failed: ${serious[0] ?? `setfattr exited ${r.code}`}`, 'overlay whiteouts need root (trusted.* xattrs) and a file system with xattr support');
  }
}
