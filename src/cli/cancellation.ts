/**
 * Stopping a command on SIGINT or SIGTERM the way Unix tools are expected to: promptly, without
 * half-written state, and with the conventional status.
 *
 * A command that installs no handler is simply killed by the signal (Node's default). Commands that
 * write (apply, build, pull, push) run inside withCancellation instead: the first signal says so on
 * stderr and aborts the command's AbortSignal, which stops transfers and builds where they are (temp
 * files removed, nothing named); the command then fails with CommandCancelled, which main reports as
 * an error and turns into exit status 128 + the signal number (130 for SIGINT, 143 for SIGTERM), what
 * a shell shows for a process the signal killed. A second signal exits at once with that status.
 */
import { DimgError } from '../errors.js';

/** The signals a command stops on. */
export type StopSignal = 'SIGINT' | 'SIGTERM';

const SIGNAL_NUMBERS: Record<StopSignal, number> = { SIGINT: 2, SIGTERM: 15 };

/** A command stopped by a signal; `exitCode` is 128 + the signal number. */
export class CommandCancelled extends DimgError {
  readonly exitCode: number;

  constructor(
    /** What was stopped, e.g. `apply`. */
    readonly what: string,
    readonly signal: StopSignal,
  ) {
    super('CANCELLED', `${what} was stopped by ${signal}`, 'run it again to finish: what was already done (pulled or pushed blobs, built layers) is kept and reused');
    this.name = 'CommandCancelled';
    this.exitCode = 128 + SIGNAL_NUMBERS[signal];
  }
}

/**
 * Runs `fn` with an AbortSignal that the first SIGINT/SIGTERM fires. Once a signal came, the outcome
 * is CommandCancelled whatever `fn` did: a failure it caused is the cancellation, and work it merely
 * skipped (an executor stops starting actions) must not look like success.
 */
export async function withCancellation<T>(what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  let received: StopSignal | undefined;
  const onSignal = (sig: StopSignal) => {
    if (received) {
      // Whatever is still unwinding is abandoned; the store's temp files are swept at its next open.
      process.stderr.write(`${sig} received again: quitting now\n`);
      process.exit(128 + SIGNAL_NUMBERS[sig]);
    }
    received = sig;
    process.stderr.write(`\n${sig} received: stopping ${what} (send it again to quit at once)\n`);
    ac.abort(new CommandCancelled(what, sig));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let result: T;
  try {
    result = await fn(ac.signal);
  } catch (e) {
    if (received) throw new CommandCancelled(what, received);
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (received) throw new CommandCancelled(what, received);
  return result;
}
