/**
 * `dimg build [FILE] [IMAGE...]`: build the spec's images (or the named ones and what they need) into
 * the local store, no push. `dimg image build [-f Dockerfile] -t NAME[:TAG] … CONTEXT`: build a plain
 * Dockerfile through the spec module's Dockerfile frontend. Both make a build-only plan with the one
 * Planner and run it through the executor and build port apply uses (exec/build-plan.ts).
 */
import { existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { DimgError } from '../../errors.js';
import type { BuiltImage } from '../../builder/builder.js';
import { FileDigests } from '../../builder/file-digests.js';
import { Planner } from '../../exec/planner.js';
import { executeBuildPlan, type BuildPlanOptions } from '../../exec/build-plan.js';
import type { Store } from '../../store/store.js';
import { DEFAULT_SPEC_FILE, type ImageSpec, type Spec } from '../../specfile/model.js';
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
      const parallelism = positiveInt(o.parallelism, '--parallelism');
      const secrets = parseSecrets(o.secret);
      await withCancellation('build', async (signal) => {
        const opts = { parallelism, noCache: !o.cache, secrets, onBuildEvent: render, signal };
        const built = await buildPlanned(store, spec, images, opts);
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
      const secrets = parseSecrets(o.secret);
      const file = resolve(o.file ?? resolve(ctx, 'Dockerfile'));
      const spec = dockerfileSpec(file, ctx, specs);
      const final = specs[specs.length - 1]!.key;
      await withCancellation('image build', async (signal) => {
        // Stages one after another, as before: `image build` has no --parallelism.
        const opts = { parallelism: 1, noCache: !o.cache, secrets, onBuildEvent: render, signal };
        const built = await buildPlanned(store, spec, [final], opts);
        summary(built.filter((b) => b.key === final));
      });
    });
}

/**
 * Plans the build of `images` of `spec` (all when empty) and what they need, and runs it; the built
 * images in plan order. The file-digest memo is loaded here and saved once the builds are done.
 */
async function buildPlanned(
  store: Store,
  spec: Spec,
  images: readonly string[],
  opts: BuildPlanOptions,
): Promise<BuiltImage[]> {
  const digests = await FileDigests.load(store.root, store.tmpDir);
  const planner = await Planner.forBuild(store, { digests });
  try {
    const session = await planner.plan(spec, { buildOnly: { images } });
    return await executeBuildPlan(session, opts);
  } finally {
    planner.close();
    // Also after a failed plan: what was hashed stays known to the next build.
    await digests.save();
  }
}

/** A plain Dockerfile's stages as a spec: its project is the context directory's name, as before. */
function dockerfileSpec(file: string, context: string, images: readonly ImageSpec[]): Spec {
  const defaults = { labels: {}, annotations: {}, args: {}, push: [], watchTags: [] };
  const project = basename(context);
  return { file, dir: context, version: 1, project, defaults, registries: {}, images, prune: false, notify: [] };
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
