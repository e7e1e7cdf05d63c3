/**
 * `dimg build [FILE] [IMAGE...]`: build the spec's images (or the named ones and what they need) into
 * the local store, no push. `dimg image build [-f Dockerfile] -t NAME[:TAG] … CONTEXT`: build a plain
 * Dockerfile through the spec module's Dockerfile frontend and the same builder.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { DimgError } from '../../errors.js';
import { buildSpec, buildImage, FileDigests, type BuiltImage } from '../../builder/index.js';
import { DEFAULT_SPEC_FILE } from '../../specfile/model.js';
// The Dockerfile frontend alone: `image build` does not load the YAML parser and schema validator.
import { dockerfileImageSpecs } from '../../specfile/dockerfile-images.js';
import { ENTITLEMENTS } from '../../specfile/dockerfile.js';
import { nodeSpecPorts } from '../../specfile/node-ports.js';
import { familiarString, parseReference } from '../../oci/reference.js';
import { positiveInt } from '../build-output.js';
import { buildRenderer as renderer } from '../../progress/build.js';
import { withCancellation } from '../cancellation.js';
import { imageCommand } from './image-group.js';
import { openStoreFor, stdoutIsTty } from '../context.js';

/** Registers `build` and `image build`. */
export function register(program: Command): void {
  program
    .command('build')
    .description('build the images of a spec (default images.yaml) into the local store; no push')
    .argument('[file]', `spec file (default ${DEFAULT_SPEC_FILE})`)
    .argument('[images...]', 'image keys to build (default: all); the images they need are built too')
    .option('--no-cache', 'run every step even when the build cache has it')
    .option('--parallelism <n>', 'how many independent images build at once', '2')
    .option('--secret <spec>', 'build secret id=ID,src=PATH (repeatable)', collect, [])
    .action(async (file: string | undefined, images: string[], o: { cache: boolean; parallelism: string; secret: string[] }, cmd: Command) => {
      let specFile = file;
      if (file !== undefined && !looksLikeSpecFile(file)) {
        images = [file, ...images];
        specFile = undefined;
      }
      const { loadSpec } = await import('../../specfile/load.js');
      const spec = await loadSpec(specFile ?? DEFAULT_SPEC_FILE, nodeSpecPorts());
      const store = await openStoreFor(cmd);
      const render = renderer(stdoutIsTty());
      await withCancellation('build', async (signal) => {
        const built = await buildSpec(spec, {
          store,
          images,
          parallelism: positiveInt(o.parallelism, '--parallelism'),
          noCache: !o.cache,
          secrets: parseSecrets(o.secret),
          onEvent: render,
          signal,
        });
        summary(built.filter((b) => b.tags.length > 0 || built.length === 1));
      });
    });

  imageCommand(program)
    .command('build')
    .description('build a Dockerfile into the local store, like docker build')
    .argument('<context>', 'build context directory')
    .option('-f, --file <dockerfile>', 'the Dockerfile (default CONTEXT/Dockerfile)')
    .option('-t, --tag <name>', 'name and tag of the image (repeatable)', collect, [])
    .option('--build-arg <k=v>', 'set a build argument (repeatable)', collect, [])
    .option('--secret <spec>', 'build secret id=ID,src=PATH (repeatable)', collect, [])
    .option('--target <stage>', 'build this stage instead of the last')
    .option('--platform <os/arch>', 'target platform (default: the host)')
    .option('--no-cache', 'run every step even when the build cache has it')
    .option('--allow <entitlement>', 'grant an entitlement the Dockerfile asks for: network.host (repeatable)', collect, [])
    .action(async (context: string, o: { file?: string; tag: string[]; buildArg: string[]; secret: string[]; target?: string; platform?: string; cache: boolean; allow: string[] }, cmd: Command) => {
      for (const a of o.allow) {
        if (!ENTITLEMENTS.includes(a)) throw new DimgError('FLAG_INVALID', `--allow ${a}: unknown entitlement`, `the entitlements are: ${ENTITLEMENTS.join(', ')}`);
      }
      const ctx = resolve(context);
      const specs = await dockerfileImageSpecs({
        dockerfile: resolve(o.file ?? resolve(ctx, 'Dockerfile')),
        context: ctx,
        tags: o.tag,
        args: parseArgs(o.buildArg),
        target: o.target,
        platform: o.platform,
        allow: o.allow,
        display: o.file ?? 'Dockerfile',
        fs: nodeSpecPorts().fs,
      });
      const store = await openStoreFor(cmd);
      const render = renderer(stdoutIsTty());
      await withCancellation('image build', async (signal) => {
        const digests = await FileDigests.load(store.root, store.tmpDir);
        const done = new Map<string, BuiltImage>();
        const built = async (key: string) => {
          const b = done.get(key);
          if (!b) throw new DimgError('IMAGE_NOT_FOUND', `stage ${key} was not built`, '');
          return b;
        };
        try {
          for (const s of specs) {
            done.set(s.key, await buildImage(s, { store, project: basename(ctx), noCache: !o.cache, secrets: parseSecrets(o.secret), onEvent: render, signal, built, digests }));
          }
        } finally {
          await digests.save();
        }
        summary([done.get(specs[specs.length - 1]!.key)!]);
      });
    });
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function looksLikeSpecFile(arg: string): boolean {
  if (/\.ya?ml$/i.test(arg)) return true;
  try {
    return existsSync(arg) && statSync(arg).isFile();
  } catch {
    return false;
  }
}


/** `K=V` pairs of --build-arg; a bare `K` takes the value from the environment, as docker does. */
function parseArgs(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of list) {
    const eq = a.indexOf('=');
    if (eq < 0) {
      if (process.env[a] !== undefined) out[a] = process.env[a]!;
    } else out[a.slice(0, eq)] = a.slice(eq + 1);
  }
  return out;
}

/** `id=ID,src=PATH` (also `source=`); the file must exist. Values are never printed. */
function parseSecrets(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of list) {
    const fields = Object.fromEntries(s.split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const id = fields.id;
    const src = fields.src ?? fields.source;
    if (!id || !src) throw new DimgError('SECRET_INVALID', `--secret ${JSON.stringify(s.split(',')[0])}…: expected id=ID,src=PATH`, 'e.g. --secret id=npmrc,src=$HOME/.npmrc');
    if (!existsSync(src)) throw new DimgError('SECRET_NOT_FOUND', `--secret ${id}: file ${src} does not exist`, 'give the path of the file holding the secret');
    out[id] = resolve(src);
  }
  return out;
}

function summary(built: BuiltImage[]): void {
  for (const b of built) {
    for (const t of b.tags) process.stdout.write(`naming to ${familiarString(parseReference(t))}\n`);
    process.stdout.write(`${b.key}: digest ${b.descriptor.digest} (image ID ${b.id.slice(7, 19)})\n`);
  }
}
