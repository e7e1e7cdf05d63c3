import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { decompress, detectCompression, gzip, peek } from '../../src/layer/index.js';
import { isDimgError } from '../../src/errors.js';
import { requireTool } from '../support/tools.js';
import { spawnSync } from 'node:child_process';

async function toBuffer(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function compressWith(tool: string, data: Buffer): Buffer {
  const r = spawnSync(tool, ['-c'], { input: data, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `${tool} -c failed`);
  return r.stdout;
}

/** Feeds `data` in tiny chunks, to exercise peek across chunk boundaries. */
function trickle(data: Buffer, size = 3): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts, { objectMode: false });
}

const payload = Buffer.concat([Buffer.from('a tar would be here\n'.repeat(2000)), randomBytes(100_000)]);

test('every supported format is detected by magic bytes and decompressed by real tools', async () => {
  for (const [tool, pkg, kind] of [['gzip', 'gzip', 'gzip'], ['zstd', 'zstd', 'zstd'], ['xz', 'xz-utils', 'xz'], ['bzip2', 'bzip2', 'bzip2']] as const) {
    requireTool(tool, pkg);
    const packed = compressWith(tool, payload);
    assert.equal(detectCompression(packed), kind);
    const out = await toBuffer(await decompress(trickle(packed, 4096)));
    assert.ok(out.equals(payload), `${kind} round trip`);
  }
  assert.equal(detectCompression(Buffer.from('ustar-ish plain bytes')), 'none');
  assert.ok((await toBuffer(await decompress(trickle(payload)))).equals(payload), 'uncompressed input passes through unchanged');
});

test('peek keeps every byte, also for inputs shorter than the magic', async () => {
  const oneByteThenRest = Readable.from([...[...payload.subarray(0, 8)].map((b) => Buffer.from([b])), payload.subarray(8)], { objectMode: false });
  const p = await peek(oneByteThenRest, 6);
  assert.ok(p.head.equals(payload.subarray(0, 6)));
  assert.ok((await toBuffer(p.stream)).equals(payload));
  const short = await peek(Readable.from([Buffer.from('ab')]), 6);
  assert.equal(short.head.toString(), 'ab');
  assert.equal((await toBuffer(short.stream)).toString(), 'ab');
  const empty = await decompress(Readable.from([]));
  assert.equal((await toBuffer(empty)).length, 0);
});

test('gzip output is deterministic, has the documented header, and is readable by gzip(1)', async () => {
  const a = await toBuffer(gzip(trickle(payload, 10_000), 6));
  const b = await toBuffer(gzip(Readable.from([payload]), 6));
  assert.ok(a.equals(b), 'same bytes whatever the chunking');
  assert.deepEqual([...a.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3], 'no name, MTIME 0, OS 3');
  assert.ok(gunzipSync(a).equals(payload));
  const r = spawnSync('gzip', ['-dc'], { input: a, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0);
  assert.ok(r.stdout.equals(payload), 'gzip(1) reads it back');
});

test('corrupt data and missing tools are DimgErrors with hints', async () => {
  const gz = compressWith('gzip', payload);
  gz[gz.length - 5] ^= 0xff; // break the CRC/size trailer
  await assert.rejects(toBuffer(await decompress(Readable.from([gz]), 'layer sha256:feed')), (e: unknown) => isDimgError(e, 'LAYER_CORRUPT') && /layer sha256:feed/.test((e as Error).message));
  const zst = compressWith('zstd', payload);
  await assert.rejects(toBuffer(await decompress(Readable.from([zst.subarray(0, zst.length / 2)]), 'layer z')), (e: unknown) => isDimgError(e, 'LAYER_CORRUPT') && /layer z: cannot decompress zstd/.test((e as Error).message));
  const oldPath = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    await assert.rejects(decompress(Readable.from([zst]), 'layer q'), (e: unknown) => isDimgError(e, 'LAYER_DECOMPRESSOR_MISSING') && /apt-get install -y zstd/.test((e as DimgLike).hint));
  } finally {
    process.env.PATH = oldPath;
  }
});

type DimgLike = Error & { hint: string };

test('parallel gzip (writeLayer): valid multi-member gzip that gzip(1) reads, the same bytes as adaptiveGzip on one worker, same as gzip() for one block', async () => {
  const { adaptiveGzip, BLOCK_SIZE, writeLayer } = await import('../../src/layer/index.js');
  const big = Buffer.concat([randomBytes(BLOCK_SIZE + 300_000), Buffer.from('compressible '.repeat(Math.ceil(BLOCK_SIZE / 13)))]);
  const one = await toBuffer(adaptiveGzip(trickle(big, 65_536), { workers: 1 }));
  const sink = new (await import('node:stream')).PassThrough();
  const written = toBuffer(sink);
  const w = await writeLayer(Readable.from([big]), sink, { compression: 'gzip', parallel: { workers: 3 } });
  const three = await written;
  assert.ok(one.equals(three), 'worker count and input chunking do not change the bytes');
  // A source read in whole blocks (own buffers, moved to the workers without a copy): same bytes.
  const blockChunks: Buffer[] = [];
  for (let o = 0; o < big.length; o += BLOCK_SIZE) blockChunks.push(Buffer.from(big.subarray(o, o + BLOCK_SIZE)));
  assert.ok((await toBuffer(adaptiveGzip(Readable.from(blockChunks), { workers: 2 }))).equals(one), 'whole-block chunks');
  assert.equal(w.size, big.length);
  assert.equal(w.blobSize, three.length);
  assert.ok(gunzipSync(three).equals(big), 'Node reads all members');
  const r = spawnSync(requireTool('gzip', 'gzip'), ['-dc'], { input: three, maxBuffer: 64 << 20 });
  assert.ok(r.stdout.equals(big), 'gzip(1) reads all members');
  assert.ok((await toBuffer(await decompress(Readable.from([three])))).equals(big));
  let members = 0;
  for (let i = 0; i + 3 < three.length; i++) if (three[i] === 0x1f && three[i + 1] === 0x8b && three[i + 2] === 8 && three[i + 3] === 0) members++;
  assert.ok(members >= Math.ceil(big.length / BLOCK_SIZE), 'one member per block');
  const small = Buffer.from('small layer '.repeat(1000));
  assert.ok((await toBuffer(adaptiveGzip(Readable.from([small])))).equals(await toBuffer(gzip(Readable.from([small]), 6))));
  assert.ok((await toBuffer(adaptiveGzip(Readable.from([])))).equals(await toBuffer(gzip(Readable.from([]), 6))), 'empty input');
  // A single short block is compressed off the main thread; the bytes must be those of compressBlock
  // (the workers' function), for compressible and for stored (random) blocks alike.
  const { compressBlock } = await import('../../src/layer/index.js');
  const mixed = Buffer.concat([randomBytes(1_500_000), Buffer.from('text '.repeat(300_000))]); // level 6 over random bytes
  for (const tail of [Buffer.from('text '.repeat(300_000)), mixed, randomBytes(BLOCK_SIZE - 1), randomBytes(2 << 20)]) {
    assert.ok((await toBuffer(adaptiveGzip(Readable.from([tail])))).equals(compressBlock(tail)), `one block of ${tail.length} bytes`);
  }
});
