/**
 * `dimg image import`, `dimg image save`, `dimg image load`: images in and out of the local store as
 * files. Wiring and rendering only; the work is in src/image/import.ts and src/archive.
 */
import type { Command } from 'commander';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DimgError } from '../../errors.js';
import { familiarString, formatReference, parseReference } from '../../oci/reference.js';
import { parsePlatform } from '../../oci/platform.js';
import { importImage, sourceDateEpoch } from '../../image/import.js';
import { resolveSaveSet, writeArchive } from '../../archive/save.js';
import { loadArchive } from '../../archive/load.js';
import { openStoreFor } from '../context.js';
import { imageCommand } from './image-group.js';

/** Registers import, save and load under `dimg image`. */
export function register(program: Command): void {
  const image = imageCommand(program);
  image
    .command('import')
    .description('create a one-layer image from a root filesystem directory or tarball (plain or compressed; - for stdin)')
    .argument('<source>', 'directory, tarball, or - for stdin')
    .argument('[name]', 'NAME[:TAG] to give the image')
    .option('-c, --change <instruction>', 'apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR); repeatable', collect, [] as string[])
    .option('-m, --message <message>', 'commit message (default: "Imported from <source>")')
    .option('--platform <os/arch>', 'platform of the image (default: this machine\'s)')
    .action(async (source: string, name: string | undefined, opts: { change: string[]; message?: string; platform?: string }, c: Command) => {
      const ref = name ? parseReference(name) : undefined;
      if (ref?.digest) throw new DimgError('REFERENCE_INVALID', `cannot name an imported image by digest: ${name}`, 'give NAME[:TAG]');
      const platform = opts.platform ? parsePlatform(opts.platform) : undefined;
      const epoch = sourceDateEpoch();
      const store = await openStoreFor(c);
      if (source === '-' && process.stdin.isTTY) {
        throw new DimgError('IMPORT_SOURCE', 'import from stdin (-), but stdin is a terminal', 'pipe a tarball in: cat rootfs.tar | dimg image import - NAME');
      }
      const img = await importImage(store, { source: source === '-' ? process.stdin : source, changes: opts.change, platform, message: opts.message, sourceDateEpoch: epoch });
      if (ref) await store.tag(formatReference(ref), img.descriptor);
      else await store.addUntagged(img.descriptor);
      process.stdout.write(`${img.id}\n`);
    });

  image
    .command('save')
    .description('save images to ONE tar archive (Docker 25+ shape: OCI layout + manifest.json), to a file or stdout')
    .argument('[image...]', 'names, IDs or digests; a repository without a tag saves all its tags')
    .option('-o, --output <file>', 'write to FILE instead of stdout (gzip-compressed when it ends in .gz or .tgz)')
    .option('--gzip', 'gzip-compress the archive')
    .option('--all', 'save every tagged image')
    .action(async (names: string[], opts: { output?: string; gzip?: boolean; all?: boolean }, c: Command) => {
      if (names.length === 0 && !opts.all) throw new DimgError('NOTHING_TO_SAVE', 'no images to save', 'name the images to save, or pass --all');
      if (!opts.output && process.stdout.isTTY) {
        throw new DimgError('STDOUT_IS_TERMINAL', 'refusing to write an image archive to a terminal', 'use -o FILE, or redirect: dimg image save busybox > busybox.tar');
      }
      const store = await openStoreFor(c);
      const items = await resolveSaveSet(store, names, { all: opts.all });
      if (!opts.output) {
        await writeArchive(store, items, process.stdout, { gzip: opts.gzip });
        return;
      }
      const gzip = opts.gzip || /\.(t?gz)$/i.test(opts.output);
      // Written beside the target and renamed at the end: a failed save never leaves a partial FILE.
      const tmp = join(dirname(opts.output), `.${basename(opts.output)}.dimg-${process.pid}`);
      try {
        await writeArchive(store, items, createWriteStream(tmp, { flags: 'w', mode: 0o644 }), { gzip });
        const fh = await fs.open(tmp, 'r');
        await fh.sync().finally(() => fh.close());
        await fs.rename(tmp, opts.output);
      } catch (e) {
        await fs.rm(tmp, { force: true });
        const code = (e as NodeJS.ErrnoException).code;
        if (code && !(e instanceof DimgError)) throw new DimgError('SAVE_OUTPUT', `cannot write ${opts.output}: ${(e as Error).message}`, 'check the directory exists and is writable', { cause: e });
        throw e;
      }
    });

  image
    .command('load')
    .description('load images from a tar archive (docker save of any version, OCI layout, skopeo docker-archive; plain or compressed)')
    .option('-i, --input <file>', 'read from FILE instead of stdin')
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (opts: { input?: string; quiet?: boolean }, c: Command) => {
      if (!opts.input && process.stdin.isTTY) {
        throw new DimgError('LOAD_INPUT', 'requested load from stdin, but stdin is a terminal', 'use -i FILE, or redirect: dimg image load < images.tar');
      }
      const store = await openStoreFor(c);
      let input: NodeJS.ReadableStream = process.stdin;
      if (opts.input) {
        await fs.access(opts.input).catch((e: Error) => {
          throw new DimgError('LOAD_INPUT', `cannot read archive ${opts.input}: ${e.message}`, 'check the path');
        });
        input = createReadStream(opts.input, { highWaterMark: 1 << 20 });
      }
      const loaded = await loadArchive(store, input as never, opts.input ? `archive ${opts.input}` : 'archive from stdin');
      if (opts.quiet) return;
      let out = '';
      for (const img of loaded) {
        if (img.names.length === 0) out += `Loaded image ID: ${img.id}\n`;
        for (const n of img.names) out += `Loaded image: ${familiarString(parseReference(n))}\n`;
      }
      process.stdout.write(out);
    });
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}
