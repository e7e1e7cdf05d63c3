/**
 * Rendering apply progress: plain timestamped lines (not a TTY, or CI=true), a TTY view, or NDJSON
 * events (`--progress=json`). Build steps come through the build renderer in the human modes. In the
 * library because `dimg apply` and the watch loop both print it.
 */
import { messageOf } from '../errors.js';
import type { BuildEvent } from '../builder/events.js';
import type { ExecEvent, ExecResult } from '../exec/execute.js';
import type { Action } from '../plan/types.js';
import { buildRenderer } from './build.js';
import { humanDuration } from './duration.js';

/** Progress modes of `--progress`. */
export type ProgressMode = 'tty' | 'plain' | 'json';

/** Listeners for executor and build events in one mode. */
export interface ApplyReporter {
  exec(e: ExecEvent): void;
  build(e: BuildEvent): void;
  warn(message: string): void;
  /** Prints the final summary. */
  finish(result: ExecResult): void;
}

/** A reporter writing to `out` (stdout by default). */
export function applyReporter(mode: ProgressMode, out: (s: string) => void = (s) => void process.stdout.write(s)): ApplyReporter {
  if (mode === 'json') {
    const emit = (o: object) => out(`${JSON.stringify({ time: new Date().toISOString(), ...o })}\n`);
    return {
      exec: (e) =>
        emit({
          type: `action-${e.type}`,
          action: e.action.id,
          kind: e.action.kind,
          ...('target' in e.action ? { ref: e.action.target.ref } : {}),
          ...('ms' in e ? { ms: e.ms } : {}),
          ...(e.type === 'done' && e.output.digest ? { digest: e.output.digest } : {}),
          ...(e.type === 'failed' ? { error: messageOf(e.error) } : {}),
          ...(e.type === 'skipped' ? { because: e.because } : {}),
        }),
      build: (e) => {
        if (e.type !== 'step-output') {
          const { type, ...rest } = e;
          emit({ type: `build-${type}`, ...rest });
        }
      },
      warn: (message) => emit({ type: 'warning', message }),
      finish: (r) => emit({ type: 'summary', done: r.done.length, failed: r.failed.length, skipped: r.skipped.length, ms: r.ms }),
    };
  }
  const stamp = () => (mode === 'plain' ? `${new Date().toISOString().slice(11, 19)} ` : '');
  const build = buildRenderer(mode === 'tty', (s) => out(s.split('\n').map((l, i, a) => (l === '' && i === a.length - 1 ? l : `${stamp()}${l}`)).join('\n')));
  return {
    exec: (e) => {
      if (e.type === 'start' && e.action.kind !== 'build') out(`${stamp()}${label(e.action)} …\n`);
      if (e.type === 'start' && e.action.kind === 'build') out(`${stamp()}${label(e.action)} (${e.action.reason})\n`);
      if (e.type === 'done') out(`${stamp()}${label(e.action)}: done in ${humanDuration(e.ms)}\n`);
      if (e.type === 'failed') out(`${stamp()}${label(e.action)}: FAILED: ${messageOf(e.error)}\n`);
      if (e.type === 'skipped') out(`${stamp()}${label(e.action)}: skipped (${e.because})\n`);
    },
    build,
    warn: (message) => out(`${stamp()}Warning: ${message}\n`),
    finish: (r) => {
      const parts = [`${r.done.length} done`];
      if (r.failed.length) parts.push(`${r.failed.length} failed`);
      if (r.skipped.length) parts.push(`${r.skipped.length} skipped`);
      out(`\nApply ${r.failed.length ? 'failed' : 'complete'}: ${parts.join(', ')} in ${humanDuration(r.ms)}.\n`);
    },
  };
}

/** How an action is named in progress lines. */
function label(a: Action): string {
  switch (a.kind) {
    case 'build':
      return `build ${a.image}`;
    case 'push':
      return `push ${a.target.ref}`;
    case 'retag':
      return `retag ${a.target.ref}`;
    case 'delete':
      return `delete ${a.target.ref}`;
    case 'unchanged':
      return a.target.ref;
  }
}
