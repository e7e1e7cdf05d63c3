/**
 * `dimg watch [FILE]`: keep images in step with the files while you edit them. Rebuilds only images
 * whose input digest changed (and their dependants), pushes to the registries named with --push
 * (default: the local store only), cancels a cycle made stale by a new change, and stops cleanly on
 * Ctrl-C / SIGTERM (exit 0). `--once` runs one cycle and exits.
 */
import type { Command } from 'commander';
import { DimgError } from '../../errors.js';
import { DEFAULT_SPEC_FILE } from '../../specfile/load.js';
import { WatchLoop } from '../../watch/loop.js';
import { watchReporter } from '../../watch/report.js';
import { openStoreFor } from '../context.js';
import { positiveInt } from '../build-output.js';
import { progressMode } from '../apply-output.js';

interface WatchFlags {
  push?: string[];
  once?: boolean;
  poll?: boolean;
  debounce: string;
  parallelism: string;
  progress: string;
}

/** How long shutdown may take before the process exits anyway (the whole stop must fit in 1 s). */
const STOP_BOUND_MS = 800;

/** Registers `dimg watch`. */
export function register(program: Command): void {
  program
    .command('watch')
    .description('rebuild (and push) images whose inputs change, as you edit; Ctrl-C stops')
    .argument('[file]', `spec file (default ${DEFAULT_SPEC_FILE})`)
    .option('--push <registry...>', 'also push to these registries of the spec (default: local store only)')
    .option('--once', 'run a single cycle and exit (0 when everything converged)')
    .option('--poll', 'poll the files instead of using inotify')
    .option('--debounce <ms>', 'quiet time after the last file event before a cycle starts', '50')
    .option('--parallelism <n>', 'actions run at once', '4')
    .option('--progress <mode>', 'auto, tty or plain', 'auto')
    .action(async (file: string | undefined, o: WatchFlags, cmd: Command) => {
      const mode = progressMode(o.progress);
      if (mode === 'json') throw new DimgError('FLAG_INVALID', '--progress=json is not supported by watch', 'use --progress=plain');
      const quietMs = Number(o.debounce);
      if (!Number.isInteger(quietMs) || quietMs < 0) throw new DimgError('FLAG_INVALID', `--debounce must be a whole number of milliseconds, got "${o.debounce}"`, 'e.g. --debounce 100');
      const store = await openStoreFor(cmd);
      const loop = await WatchLoop.create({
        specFile: file ?? DEFAULT_SPEC_FILE,
        store,
        push: o.push ?? [],
        reporter: watchReporter(mode, process.cwd()),
        parallelism: positiveInt(o.parallelism, '--parallelism'),
        poll: o.poll,
        quietMs,
        maxMs: Math.max(3000, quietMs * 10),
      });
      await untilSignal(loop, async (stopped) => {
        if (o.once) {
          const ok = await Promise.race([loop.once(), stopped.then(() => true)]);
          if (!ok) process.exitCode = 1;
          return;
        }
        await loop.start();
        await stopped;
      });
    });
}

/**
 * Runs `fn` with a promise that settles on the first SIGINT/SIGTERM, after the loop has stopped
 * (bounded). A second signal exits at once with 130.
 */
async function untilSignal(loop: WatchLoop, fn: (stopped: Promise<void>) => Promise<void>): Promise<void> {
  let onSignal: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    onSignal = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(130));
      void loop.stop(STOP_BOUND_MS).finally(resolve);
    };
  });
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await fn(stopped);
  } finally {
    await loop.stop(STOP_BOUND_MS);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // Nothing the loop owns is left running; do not let a stray socket or timer delay the exit.
    setTimeout(() => process.exit(), 150).unref();
  }
}
