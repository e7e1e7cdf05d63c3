/**
 * Streams that stop when an AbortSignal fires: destroyed with the caller's error, so whoever consumes
 * them (a store write, an upload) fails at once and discards what it had of them.
 */
import type { Readable } from 'node:stream';

/** `s`, destroyed with `error()` when `signal` fires (or at once if it already has). */
export function destroyOnAbort<T extends Readable>(s: T, signal: AbortSignal | undefined, error: () => Error): T {
  if (!signal) return s;
  const onAbort = () => {
    // The consumer may already have stopped reading (a pipeline torn down by the same abort): then
    // nobody listens any more, and an unheard 'error' would crash the process instead of cancelling.
    s.on('error', () => undefined);
    s.destroy(error());
  };
  if (signal.aborted) onAbort();
  else {
    signal.addEventListener('abort', onAbort, { once: true });
    s.once('close', () => signal.removeEventListener('abort', onAbort));
  }
  return s;
}
