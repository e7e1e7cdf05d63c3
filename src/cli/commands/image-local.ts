/**
 * `dimg image ls|inspect|history|tag|rm|prune` and the aliases `dimg images` / `dimg rmi`: the
 * docker-CLI image commands over the local store. Wiring and rendering only; the work is in src/image.
 */
import type { Command } from 'commander';
import { DimgError } from '../../errors.js';
import { parseReference } from '../../oci/reference.js';
import { parsePlatform } from '../../oci/platform.js';
import { findImage } from '../../image/find.js';
import { listImages, shortId, type ImageRow } from '../../image/list.js';
import { inspectRecord } from '../../image/inspect.js';
import { imageHistory } from '../../image/history.js';
import { eventText, pruneImages, removeImages } from '../../image/remove.js';
import { openStoreFor } from '../context.js';
import { humanSize, table, timeAgo } from '../format.js';
import { imageCommand } from './image-group.js';
import { renderTemplate } from './image-format.js';
import { createInterface } from 'node:readline/promises';

/** Registers the local image commands on `program`. */
export function register(program: Command): void {
  const image = imageCommand(program);
  addLs(image.command('ls').alias('list'));
  addLs(program.command('images'));
  addInspect(image.command('inspect'));
  addHistory(image.command('history'));
  addTag(image.command('tag'));
  addRm(image.command('rm').alias('remove'));
  addRm(program.command('rmi'));
  addPrune(image.command('prune'));
}

function addLs(cmd: Command): void {
  cmd
    .description('list images in the local store (newest first)')
    .argument('[repository]', 'only images of this repository (REPOSITORY[:TAG])')
    .option('-a, --all', 'show all images (dimg keeps no intermediate images, so this is the default view)')
    .option('--digests', 'show manifest digests')
    .option('-q, --quiet', 'only show image IDs (each once)')
    .option('--no-trunc', 'do not truncate IDs')
    .option('--format <format>', "'json' (one JSON object per line, like docker) or a Go template such as '{{.Repository}}:{{.Tag}}'")
    .action(async (repository: string | undefined, opts: { digests?: boolean; quiet?: boolean; trunc: boolean; format?: string }, c: Command) => {
      const store = await openStoreFor(c);
      const { rows, broken } = await listImages(store);
      for (const b of broken) process.stderr.write(`warning: ${b.entry.name ?? b.entry.descriptor.digest} cannot be read: ${b.error.message} (run \`dimg store verify\`)\n`);
      const shown = repository ? rows.filter(repoFilter(repository)) : rows;
      const id = (r: ImageRow) => (opts.trunc ? shortId(r.image.id) : r.image.id);
      if (opts.quiet) {
        const ids = [...new Set(shown.map(id))];
        process.stdout.write(ids.map((i) => `${i}\n`).join(''));
        return;
      }
      if (opts.format) {
        const tmpl = opts.format === 'json' ? '{{json .}}' : opts.format;
        for (const r of shown) process.stdout.write(`${renderTemplate(tmpl, lsRecord(r, id(r)))}\n`);
        return;
      }
      const headers = ['REPOSITORY', 'TAG', ...(opts.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE'];
      const now = new Date();
      const data = shown.map((r) => [
        r.ref ? r.ref.familiarName() : '<none>',
        r.ref?.tag ?? '<none>',
        ...(opts.digests ? [r.entry.descriptor.digest] : []),
        id(r),
        r.createdMs ? timeAgo(new Date(r.createdMs), now) : 'N/A',
        humanSize(r.size),
      ]);
      process.stdout.write(table(headers, data));
    });
}

function repoFilter(arg: string): (r: ImageRow) => boolean {
  const want = parseReference(arg, { defaultTag: false });
  return (r) =>
    r.ref !== undefined && r.ref.repository === want.repository && (want.tag === undefined || r.ref.tag === want.tag);
}

/** The fields of `docker images --format json`, with the same names and value shapes. */
function lsRecord(r: ImageRow, id: string): Record<string, string> {
  const created = r.createdMs ? new Date(r.createdMs) : undefined;
  return {
    Containers: 'N/A',
    CreatedAt: created ? created.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' +0000 UTC') : '',
    CreatedSince: created ? timeAgo(created) : 'N/A',
    Digest: r.entry.descriptor.digest,
    ID: id,
    Repository: r.ref ? r.ref.familiarName() : '<none>',
    SharedSize: 'N/A',
    Size: humanSize(r.size),
    Tag: r.ref?.tag ?? '<none>',
    UniqueSize: 'N/A',
    VirtualSize: humanSize(r.size),
  };
}

function addInspect(cmd: Command): void {
  cmd
    .description('show low-level information on images as a JSON array (like docker image inspect)')
    .argument('<image...>', 'names, IDs or digests')
    .option('-f, --format <template>', "Go-template subset, e.g. '{{.Id}}' or '{{json .Config}}'")
    .option('--platform <os/arch>', 'which platform of a multi-platform image to show')
    .action(async (names: string[], opts: { format?: string; platform?: string }, c: Command) => {
      const store = await openStoreFor(c);
      const platform = opts.platform ? parsePlatform(opts.platform) : undefined;
      const { rows } = await listImages(store, platform);
      const records: unknown[] = [];
      const missing: DimgError[] = [];
      for (const n of names) {
        try {
          const found = await findImage(store, n, platform);
          records.push(inspectRecord(found.image, rows));
        } catch (e) {
          if (!(e instanceof DimgError)) throw e;
          missing.push(e);
        }
      }
      if (opts.format) for (const r of records) process.stdout.write(`${renderTemplate(opts.format, r)}\n`);
      else process.stdout.write(`${JSON.stringify(records, null, 4)}\n`);
      if (missing.length === 1) throw missing[0];
      if (missing.length > 1) {
        throw new DimgError('IMAGE_NOT_FOUND', missing.map((e) => e.message).join('; '), '`dimg image ls` lists local images');
      }
    });
}

function addHistory(cmd: Command): void {
  cmd
    .description('show the history of an image (newest first)')
    .argument('<image>', 'name, ID or digest')
    .option('--no-trunc', "don't truncate output")
    .option('-q, --quiet', 'only show image IDs')
    .option('-H, --human [bool]', 'print sizes and dates in human readable format (-H=false for raw values)', 'true')
    .action(async (name: string, opts: { trunc: boolean; quiet?: boolean; human: string | boolean }, c: Command) => {
      const store = await openStoreFor(c);
      const found = await findImage(store, name);
      const rows = await imageHistory(store, found.image);
      const human = !['false', '0', '=false', '=0'].includes(String(opts.human));
      const id = (i: string) => (i.startsWith('sha256:') && opts.trunc ? shortId(i) : i);
      if (opts.quiet) {
        process.stdout.write(rows.map((r) => `${id(r.id)}\n`).join(''));
        return;
      }
      const now = new Date();
      const data = rows.map((r) => {
        const createdBy = r.createdBy.replace(/\t/g, ' ');
        return [
          id(r.id),
          r.created ? (human ? timeAgo(r.created, now) : r.created) : 'N/A',
          opts.trunc ? ellipsis(createdBy, 45) : createdBy,
          human ? humanSize(r.size) : String(r.size),
          r.comment,
        ];
      });
      process.stdout.write(table(['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'], data));
    });
}

/** Docker's Ellipsis: at most `max` characters, the last one `…` when cut. */
function ellipsis(s: string, max: number): string {
  const chars = [...s];
  return chars.length <= max ? s : `${chars.slice(0, max - 1).join('')}…`;
}

function addTag(cmd: Command): void {
  cmd
    .description('create a name TARGET that refers to the image SOURCE')
    .argument('<source>', 'name, ID or digest of an image')
    .argument('<target>', 'NAME[:TAG]')
    .action(async (source: string, target: string, _opts: unknown, c: Command) => {
      const store = await openStoreFor(c);
      const ref = parseReference(target);
      if (ref.digest) throw new DimgError('REFERENCE_INVALID', `cannot tag with a digest: ${target}`, 'a tag target looks like NAME[:TAG]');
      const found = await findImage(store, source);
      await store.tag(ref.toString(), found.entry.descriptor);
    });
}

function addRm(cmd: Command): void {
  cmd
    .description('remove images: untag a name, delete the image when its last name goes')
    .argument('<image...>', 'names, IDs or digests')
    .option('-f, --force', 'delete even when the image has names in several repositories or the build cache records it')
    .action(async (names: string[], opts: { force?: boolean }, c: Command) => {
      const store = await openStoreFor(c);
      const result = await removeImages(store, names, { force: opts.force });
      process.stdout.write(result.events.map((e) => `${eventText(e)}\n`).join(''));
      if (result.errors.length === 1) throw result.errors[0];
      if (result.errors.length > 1) {
        for (const e of result.errors.slice(0, -1)) process.stderr.write(`error: ${e.message}\n`);
        throw result.errors[result.errors.length - 1];
      }
    });
}

function addPrune(cmd: Command): void {
  cmd
    .description('remove dangling images (with -a: all images the build cache does not record), then reclaim space')
    .option('-a, --all', 'remove all images, not just dangling ones (images the build cache records are kept)')
    .option('--cache', 'also drop the build cache')
    .option('-f, --force', 'do not prompt for confirmation (prompting happens only on a terminal)')
    .action(async (opts: { all?: boolean; cache?: boolean; force?: boolean }, c: Command) => {
      if (!opts.force && process.stdin.isTTY) {
        const what = opts.all ? 'all images without a build-cache reference' : 'all dangling images';
        const rl = createInterface({ input: process.stdin, output: process.stderr });
        const answer = await rl.question(`WARNING! This will remove ${what}${opts.cache ? ' and the build cache' : ''}.\nAre you sure you want to continue? [y/N] `);
        rl.close();
        if (!/^y(es)?$/i.test(answer.trim())) return;
      }
      const store = await openStoreFor(c);
      const result = await pruneImages(store, { all: opts.all, cache: opts.cache });
      let out = '';
      if (result.events.length > 0) out += `Deleted Images:\n${result.events.map((e) => `${eventText(e, true)}\n`).join('')}\n`;
      if (opts.cache) out += `Build cache entries removed: ${result.cacheEntriesRemoved}\n`;
      out += `Total reclaimed space: ${humanSize(result.reclaimed)}\n`;
      process.stdout.write(out);
    });
}
