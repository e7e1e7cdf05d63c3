/**
 * Helpers shared by the image command end-to-end tests: running dimg with a checked exit code,
 * making a busybox image, checking a store's soundness from the outside (every blob hashes to its
 * name, every name's content is present), and validating JSON against the OCI schemas with ajv.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { dimg, dimgOk, type CliOptions, type CliResult } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { tempDir } from '../support/tmp.js';
import type { TestContext } from 'node:test';

/** Runs dimg and asserts exit 0, showing stderr otherwise. */
export function ok(args: string[], opts: CliOptions): Promise<CliResult> {
  return dimgOk(args, opts);
}

/** Runs dimg and asserts it fails with exit 1 and an `error:` line matching `message`. */
export async function fails(args: string[], opts: CliOptions, message: RegExp): Promise<CliResult> {
  const r = await dimg(args, opts);
  assert.equal(r.code, 1, `dimg ${args.join(' ')} should fail with 1, got ${r.code}:\n${r.stderr}${r.stdout.slice(0, 500)}`);
  assert.match(r.stderr, /^error: /m);
  assert.match(r.stderr, message);
  assert.doesNotMatch(r.stderr, /internal error/);
  return r;
}

/** Imports a fresh busybox rootfs as `name` into the store at `root`; returns the image ID. */
export async function importBusybox(t: TestContext, root: string, name: string, extra: string[] = []): Promise<string> {
  const dir = makeBusyboxRootfs(join(tempDir(t), 'rootfs'));
  const r = await ok(['image', 'import', ...extra, dir, name], { root });
  return r.stdout.trim();
}

/** sha256 of a file, as a digest. */
export function fileDigest(path: string): string {
  return `sha256:${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
}

/**
 * Checks the store at `root` from the outside: every blob hashes to its name, no temp blob is
 * visible under blobs/, and every index entry's manifest, config and layers exist. Returns the index.
 */
export function assertStoreSound(root: string): { manifests: { digest: string; annotations?: Record<string, string> }[] } {
  const blobs = join(root, 'oci', 'blobs', 'sha256');
  for (const name of readdirSync(blobs)) {
    assert.match(name, /^[a-f0-9]{64}$/, `unexpected file in blobs/sha256: ${name}`);
    assert.equal(fileDigest(join(blobs, name)), `sha256:${name}`, `blob ${name} does not hash to its name`);
  }
  const index = JSON.parse(readFileSync(join(root, 'oci', 'index.json'), 'utf8'));
  for (const d of index.manifests) {
    const m = join(blobs, d.digest.slice(7));
    assert.ok(existsSync(m), `index entry ${d.annotations?.['io.containerd.image.name'] ?? d.digest} points at a missing manifest`);
    const manifest = JSON.parse(readFileSync(m, 'utf8'));
    for (const c of [manifest.config, ...(manifest.layers ?? [])].filter(Boolean)) {
      assert.ok(existsSync(join(blobs, c.digest.slice(7))), `image ${d.digest} needs missing blob ${c.digest}`);
    }
  }
  return index;
}

/**
 * An ajv validator for the OCI schemas in /work/shared/oci-schema. They are draft-04 with `id` and
 * relative `$ref`s between files; ajv 8 speaks draft-07, so each file is added under a common base
 * URI by its file name (nested `id`s removed), which resolves the relative refs the same way.
 */
export function ociValidator(): (schemaFile: string, data: unknown) => void {
  const dir = '/work/shared/oci-schema';
  const ajv = new Ajv({ strict: false, validateFormats: false, logger: false, allErrors: true });
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        if ((k === 'id' && typeof x === 'string' && x.startsWith('http')) || k === '$schema') continue;
        out[k] = strip(x);
      }
      return out;
    }
    return v;
  };
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
    const schema = strip(JSON.parse(readFileSync(join(dir, f), 'utf8'))) as Record<string, unknown>;
    ajv.addSchema({ ...schema, $id: `https://oci.schema.test/${f}` });
  }
  return (schemaFile, data) => {
    const validate = ajv.getSchema(`https://oci.schema.test/${schemaFile}`);
    assert.ok(validate, `no schema ${schemaFile}`);
    const valid = validate(data);
    assert.ok(valid, `${schemaFile}: ${JSON.stringify(validate.errors, null, 1)}\n${JSON.stringify(data).slice(0, 1000)}`);
  };
}

/** One entry of a hand-made tar. */
export interface TarEntry {
  name: string;
  data?: Buffer | string;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  linkname?: string;
  mode?: number;
}

/** Builds a tar archive in memory (for small hand-made archives and layers in tests). */
export async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const tar = (await import('tar-stream')).default;
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => {
      chunks.push(c as Buffer);
    });
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const e of entries) {
    const data = e.data === undefined ? undefined : Buffer.from(e.data);
    await new Promise<void>((resolve, reject) =>
      pack.entry(
        { name: e.name, type: e.type ?? 'file', linkname: e.linkname, mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644), mtime: new Date(0), uid: 0, gid: 0, size: data?.length ?? 0 },
        data ?? Buffer.alloc(0),
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** sha256 digest of a buffer. */
export function digestOf(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
