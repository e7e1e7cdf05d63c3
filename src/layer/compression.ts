/**
 * Layer compression: detection by magic bytes, decompression of gzip (Node zlib) and of zstd, xz and
 * bzip2 (their command-line tools, since Node 20's zlib has none of them), and deterministic gzip.
 */
import { spawn, spawnSync } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { createGunzip, createGzip, constants as zc } from 'node:zlib';
import { DimgError, messageOf } from '../errors.js';

/** A compression format dimg can recognise in a layer blob. */
export type Compression = 'none' | 'gzip' | 'zstd' | 'bzip2' | 'xz';

/** Bytes needed by detectCompression to decide (the longest magic, xz's six bytes). */
export const MAGIC_BYTES = 6;

const MAGICS: ReadonlyArray<[Exclude<Compression, 'none'>, number[]]> = [
  ['gzip', [0x1f, 0x8b, 0x08]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['bzip2', [0x42, 0x5a, 0x68]], // "BZh"
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
];

/**
 * The compression format whose magic number starts `head` ('none' when none matches, which includes a
 * plain tar; a tar's first bytes are an entry name and cannot collide with these magics in practice).
 */
export function detectCompression(head: Buffer): Compression {
  for (const [kind, magic] of MAGICS) {
    if (head.length >= magic.length && magic.every((b, i) => head[i] === b)) return kind;
  }
  return 'none';
}

/**
 * Reads the first `n` bytes of `source` (fewer if it ends sooner) without losing them: the returned
 * stream yields every byte of the source, head included. `source` must not be flowing yet.
 */
export function peek(source: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let len = 0;
    const cleanup = (): void => {
      source.off('readable', onReadable);
      source.off('end', onEnd);
      source.off('error', onError);
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onEnd = (): void => {
      cleanup();
      const head = Buffer.concat(chunks);
      // The source is over: hand back a fresh stream with what we read.
      resolve({ head, stream: Readable.from(head.length > 0 ? [head] : []) });
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while (len < n && (chunk = source.read() as Buffer | null) !== null) {
        chunks.push(chunk);
        len += chunk.length;
      }
      if (len >= n) {
        cleanup();
        const head = Buffer.concat(chunks);
        source.unshift(head);
        resolve({ head: head.subarray(0, n), stream: source });
      }
    };
    source.on('readable', onReadable);
    source.on('end', onEnd);
    source.on('error', onError);
  });
}

const TOOLS: Record<'zstd' | 'bzip2' | 'xz', { cmd: string; args: string[]; pkg: string }> = {
  zstd: { cmd: 'zstd', args: ['-dc', '-q'], pkg: 'zstd' },
  xz: { cmd: 'xz', args: ['-dc', '-q'], pkg: 'xz-utils' },
  bzip2: { cmd: 'bzip2', args: ['-dc', '-q'], pkg: 'bzip2' },
};

const onPath = new Map<string, boolean>();
function toolAvailable(cmd: string): boolean {
  const key = `${cmd}\0${process.env.PATH ?? ''}`;
  let ok = onPath.get(key);
  if (ok === undefined) {
    ok = spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
    onPath.set(key, ok);
  }
  return ok;
}

/**
 * The uncompressed content of `source`, whatever of gzip, zstd, xz, bzip2 or nothing it is compressed
 * with (decided by magic bytes, so a mislabelled media type does not matter). gzip input may be
 * several concatenated members (as parallel gzip writes). zstd/xz/bzip2 need their tool on PATH; if it
 * is missing this fails with LAYER_DECOMPRESSOR_MISSING naming the Debian package. A corrupt stream
 * makes the returned stream fail with LAYER_CORRUPT naming `subject`. Errors of `source` propagate.
 */
export async function decompress(source: Readable, subject = 'layer'): Promise<Readable> {
  const { head, stream } = await peek(source, MAGIC_BYTES);
  const kind = detectCompression(head);
  if (kind === 'none') return stream;
  if (kind === 'gzip') {
    const gunzip = createGunzip();
    // The source's own failures (a digest mismatch, a network error) are passed on unchanged.
    stream.on('error', (err) => gunzip.destroy(Object.assign(err, { fromSource: true })));
    const out = stream.pipe(gunzip);
    return relabelErrors(out, subject, 'gzip');
  }
  return spawnFilter(stream, TOOLS[kind], subject, kind);
}

/** Turns zlib's terse errors into LAYER_CORRUPT naming the layer; DimgErrors pass through. */
function relabelErrors(s: Readable, subject: string, kind: string): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  s.on('error', (err) => {
    const passOn = err instanceof DimgError || (err as { fromSource?: boolean }).fromSource === true;
    out.destroy(passOn ? err : corrupt(subject, kind, messageOf(err)));
  });
  out.on('close', () => { if (!s.destroyed && !s.readableEnded) s.destroy(); });
  s.pipe(out);
  return out;
}

function corrupt(subject: string, kind: string, detail: string): DimgError {
  return new DimgError('LAYER_CORRUPT', `${subject}: cannot decompress ${kind} data: ${detail}`, 'the blob is damaged; fetch it again (run `dimg store verify` for local blobs)');
}

/** Runs `tool` as a filter; the output ends only once the tool exited 0, so truncation is never silent. */
function spawnFilter(input: Readable, tool: { cmd: string; args: string[]; pkg: string }, subject: string, kind: string): Readable {
  if (!toolAvailable(tool.cmd)) {
    throw new DimgError('LAYER_DECOMPRESSOR_MISSING', `${subject}: is ${kind}-compressed and \`${tool.cmd}\` is not installed`, `install it: apt-get install -y ${tool.pkg}`);
  }
  const child = spawn(tool.cmd, tool.args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => { if (stderr.length < 4096) stderr += d; });
  child.on('error', (err) => out.destroy(corrupt(subject, kind, messageOf(err))));
  input.on('error', (err) => { out.destroy(err); child.kill(); });
  // EPIPE when the tool exits early on bad input; the exit status reports the real problem.
  child.stdin.on('error', () => {});
  input.pipe(child.stdin);
  child.stdout.pipe(out, { end: false });
  child.on('close', (code, signal) => {
    if (out.destroyed) return;
    if (code === 0) out.end();
    else out.destroy(corrupt(subject, kind, stderr.trim() || `${tool.cmd} exited ${code ?? signal}`));
  });
  out.on('close', () => { if (child.exitCode === null) child.kill(); input.destroy(); });
  return out;
}

/**
 * gzip-compresses `source` with Node's zlib at a fixed `level` (default 6, like Go's default). The
 * output is a pure function of the input bytes and the level for a given Node/zlib build: the header
 * has MTIME 0, no file name, OS 3. Use adaptiveGzip (adaptive-gzip.ts) for big layers.
 */
export function gzip(source: Readable, level = 6): Readable {
  const gz = createGzip({ level, memLevel: 8, strategy: zc.Z_DEFAULT_STRATEGY });
  source.on('error', (err) => gz.destroy(err));
  return source.pipe(gz);
}
