/**
 * A plain Dockerfile as ImageSpecs, without any images.yaml: what `dimg image build -f Dockerfile
 * -t NAME[:TAG] [--build-arg K=V] CONTEXT` builds. The final stage is the image (named by the `-t`
 * references), earlier stages it needs are intermediate images, exactly as in a spec.
 */
import { posix } from 'node:path';
import { DimgError } from '../errors.js';
import { parseReference, type ParsedReference } from '../oci/reference.js';
import type { ImageSpec } from './model.js';
import { deepFreeze } from './model.js';
import type { SpecFs } from './ports.js';
import { compileDockerfile } from './dockerfile.js';
import { stageImage } from './stage-image.js';
import { SpecError, sortProblems, type Problem } from './problems.js';
import { contextIgnore, copySourceProblems } from './sources.js';

/** Inputs of a plain Dockerfile build. */
export interface DockerfileBuildOptions {
  /** Absolute path of the Dockerfile. */
  readonly dockerfile: string;
  /** Absolute context directory. */
  readonly context: string;
  /** `-t` references as typed (`app`, `app:1`, `host:5000/app:1`); may be empty. */
  readonly tags: readonly string[];
  readonly args?: Readonly<Record<string, string>>;
  readonly target?: string;
  readonly platform?: string;
  /** Entitlements granted with `--allow` (see CompileDockerfileOptions.allow). */
  readonly allow?: readonly string[];
  /** Key of the final image (default: the last path component of the first tag, else `dockerfile`). */
  readonly key?: string;
  /** The Dockerfile as shown in messages (default: its absolute path). */
  readonly display?: string;
  readonly fs: SpecFs;
}

/**
 * Compiles and checks the Dockerfile; returns the images in build order, the final one last.
 * Throws REFERENCE_INVALID for a bad `-t`, DOCKERFILE_NOT_FOUND, CONTEXT_NOT_FOUND, or SpecError
 * with every problem of the Dockerfile.
 */
export async function dockerfileImageSpecs(opts: DockerfileBuildOptions): Promise<ImageSpec[]> {
  const refs: ParsedReference[] = opts.tags.map((t) => parseReference(t));
  const display = opts.display ?? opts.dockerfile;
  const text = await opts.fs.readText(opts.dockerfile);
  if (text === undefined) throw new DimgError('DOCKERFILE_NOT_FOUND', `Dockerfile ${display} does not exist`, 'pass its path with -f, or put a Dockerfile in the context');
  if ((await opts.fs.stat(opts.context)) !== 'dir') throw new DimgError('CONTEXT_NOT_FOUND', `build context ${opts.context} is not a directory`, 'the last argument is the context directory');
  const first = refs[0];
  const key = opts.key ?? (first ? first.familiarName().split('/').at(-1)! : 'dockerfile');
  const compiled = compileDockerfile({ text, file: display, key, args: opts.args, target: opts.target, platform: opts.platform, allow: opts.allow });
  const problems: Problem[] = [...compiled.problems];
  const ignore = await contextIgnore(opts.fs, opts.context);
  if (ignore.error) problems.push({ file: posix.join(opts.context, ignore.file!), line: 1, col: 1, message: ignore.error });
  const images: ImageSpec[] = [];
  for (const st of compiled.stages) {
    for (const [i, step] of st.steps.entries()) {
      if ((step.kind === 'copy' || step.kind === 'add') && !step.from) {
        for (const m of await copySourceProblems(opts.fs, opts.context, step, ignore)) problems.push({ file: display, line: st.stepLines[i]!, col: 1, message: m });
      }
    }
    const image = stageImage({ ...st, context: opts.context, dockerfile: opts.dockerfile, platform: opts.platform, location: { file: display, line: st.line, col: 1 } });
    if (!st.final) {
      images.push(image);
      continue;
    }
    const localRefs = [...new Set(refs.map(String))];
    images.push({
      ...image,
      repository: first ? first.familiarName() : key,
      tags: [...new Set(refs.flatMap((r) => (r.tag ? [r.tag] : [])))],
      localRefs,
      intermediate: false,
    });
  }
  if (problems.length > 0) throw new SpecError(display, sortProblems(problems));
  return deepFreeze(images);
}
