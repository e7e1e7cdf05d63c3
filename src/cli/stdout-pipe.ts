/**
 * What happens when standard output stops taking writes.
 *
 * C and Go programs writing into a pipe whose reader has gone (`dimg image save X | head -c 100`) are
 * ended by SIGPIPE: no message, status 141 in the shell. Node ignores SIGPIPE, so the write fails with
 * EPIPE instead, and an 'error' event nobody handles is a crash with a stack trace. watchStdout
 * handles it: the failure is remembered (later writes fail the same way, harmlessly), the command's
 * own streams stop with the error, and main turns it into that quiet 141. Any other write failure
 * (a full disk behind `> file`) is a real error and is reported as one.
 */
import { DimgError } from '../errors.js';

/** The status of a process ended by SIGPIPE (128 + 13), what `cat` and `docker save` exit with. */
export const SIGPIPE_STATUS = 141;

let failure: NodeJS.ErrnoException | undefined;
let watching = false;

/** Starts noting write failures of process.stdout (idempotent). */
export function watchStdout(): void {
  if (watching) return;
  watching = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    failure ??= e;
  });
}

/** The first write failure of stdout since watchStdout, if any. */
export function stdoutFailure(): NodeJS.ErrnoException | undefined {
  return failure;
}

/** True when stdout's reader went away (EPIPE): the command ends quietly with SIGPIPE_STATUS. */
export function stdoutClosed(): boolean {
  return failure?.code === 'EPIPE';
}

/** The DimgError for a stdout write failure other than a closed pipe. */
export function stdoutError(e: NodeJS.ErrnoException): DimgError {
  return new DimgError('STDOUT_WRITE', `cannot write to standard output: ${e.message}`, 'check where standard output goes (a full disk behind a redirect, a closed terminal)', { cause: e });
}
