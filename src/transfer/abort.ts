/**
 * Cancellation of transfers with an AbortSignal: the error they fail with, and streams that are
 * destroyed with it when the signal fires (so an upload or a compression in progress stops at once).
 */
import type { Readable } from 'node:stream';
import { DimgError } from '../errors.js';
import { destroyOnAbort } from '../registry/abort.js';

/** The PUSH_CANCELLED error for `what` (e.g. `push of host/repo:tag`). */
export function abortError(what: string): DimgError {
  return new DimgError('PUSH_CANCELLED', `${what} was cancelled`, 'run the command again to finish it; blobs already sent are reused');
}

/** `s`, destroyed with abortError(what) when `signal` fires (or at once if it already has). */
export function abortable<T extends Readable>(s: T, signal: AbortSignal | undefined, what: string): T {
  return destroyOnAbort(s, signal, () => abortError(what));
}
