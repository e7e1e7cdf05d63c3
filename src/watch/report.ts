/**
 * What `dimg watch` prints: one block per cycle saying which files triggered it, what is rebuilt and
 * why, the new digests, and `ready in 0.31s` measured from the first file event. Build and action
 * progress reuse apply's reporter. Problems go to stderr; everything else to stdout.
 */
import { relative, isAbsolute } from 'node:path';
import { messageOf, isDimgError } from '../errors.js';
import { formatProblems, SpecError } from '../specfile/problems.js';
import { applyReporter, type ApplyReporter, type ProgressMode } from '../progress/apply.js';
import type { BuildAction } from '../plan/types.js';

/** How many triggering paths are listed before "(+N more)". */
const SHOWN_PATHS = 3;

/** Writers for the watch loop's output. */
export interface WatchReporter {
  /** Build and executor events (apply's reporter). */
  readonly progress: ApplyReporter;
  info(line: string): void;
  warn(line: string): void;
  /** A burst of file events. */
  trigger(paths: readonly string[]): void;
  /** The spec is invalid (or another cycle-preparing error): shown, the loop waits. */
  problem(err: unknown, keptLastGood: boolean): void;
  /** Builds about to run, with reasons and the changed files feeding each. */
  rebuilding(builds: readonly BuildAction[], why: (image: string) => string | undefined): void;
  /** New image digests (local) and tags written (registry), after a successful cycle. */
  digests(images: ReadonlyMap<string, string>, tags: ReadonlyMap<string, string>): void;
  /** End of a cycle. */
  ready(ms: number, summary: string): void;
}

/** A reporter writing to stdout/stderr in `mode`, with paths shown relative to `cwd`. */
export function watchReporter(mode: ProgressMode, cwd: string, out: (s: string) => void = (s) => void process.stdout.write(s), err: (s: string) => void = (s) => void process.stderr.write(s)): WatchReporter {
  const stamp = () => (mode === 'plain' ? `${new Date().toISOString().slice(11, 19)} ` : '');
  const show = (p: string) => {
    const r = relative(cwd, p);
    return r !== '' && !r.startsWith('..') && !isAbsolute(r) ? r : p;
  };
  const progress = applyReporter(mode === 'json' ? 'plain' : mode, out);
  return {
    progress,
    info: (line) => out(`${stamp()}${line}\n`),
    warn: (line) => err(`${stamp()}Warning: ${line}\n`),
    trigger(paths) {
      const shown = paths.slice(0, SHOWN_PATHS).map(show).join(', ');
      const more = paths.length > SHOWN_PATHS ? ` (+${paths.length - SHOWN_PATHS} more)` : '';
      out(`\n${stamp()}changed: ${shown}${more} [${paths.length} file${paths.length === 1 ? '' : 's'}]\n`);
    },
    problem(e, keptLastGood) {
      const tail = keptLastGood ? 'keeping the last good state; waiting for a fix' : 'waiting for a fix';
      if (e instanceof SpecError) {
        err(`${stamp()}error: ${e.problems.length} problem${e.problems.length === 1 ? '' : 's'} in the spec (${tail}):\n${formatProblems(e.problems).trimEnd()}\n`);
      } else {
        err(`${stamp()}error: ${messageOf(e)} (${tail})\n`);
        if (isDimgError(e) && e.hint) err(`${stamp()}hint: ${e.hint}\n`);
      }
    },
    rebuilding(builds, why) {
      for (const b of builds) {
        const detail = why(b.image);
        out(`${stamp()}rebuild ${b.image}: ${b.reason}${b.detail ? ` (${b.detail})` : ''}${detail ? `: ${detail}` : ''}\n`);
      }
    },
    digests(images, tags) {
      for (const [image, digest] of images) out(`${stamp()}  ${image} ${digest}\n`);
      for (const [ref, digest] of tags) out(`${stamp()}  ${ref} -> ${digest}\n`);
    },
    ready(ms, summary) {
      out(`${stamp()}ready in ${(ms / 1000).toFixed(2)}s${summary ? ` (${summary})` : ''}\n`);
    },
  };
}
