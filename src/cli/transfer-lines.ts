/**
 * The terminal mechanics shared by every transfer progress display (pull, push, copy): finished
 * blobs as whole lines, and on a TTY one status line below them with the bytes of the blobs still in
 * flight, redrawn at most ten times a second. Not a TTY: the lines only, so logs stay clean.
 * What the lines say is the caller's; this module only decides where and when they are written.
 */
import type { Descriptor } from '../oci/types.js';
import { humanBytes } from './format.js';

/** The first 12 hex digits of a sha256 digest (as Docker shows layer IDs); other strings unchanged. */
export function shortDigest(d: string): string {
  return d.startsWith('sha256:') ? d.slice(7, 19) : d;
}

/** A progress display writing to one stream. */
export interface TransferLines {
  /** Prints a finished line; `done` names a blob that is no longer in flight. */
  line(text: string, done?: string): void;
  /** Bytes sent/received so far for a blob in flight; undefined when `out` is not a TTY. */
  onBytes?: (d: Descriptor, sent: number) => void;
}

/** Progress on `out`; `verb` labels a blob in flight in the status line (e.g. `Pushing`), or none. */
export function transferLines(out: NodeJS.WriteStream, verb?: string): TransferLines {
  const tty = Boolean(out.isTTY);
  const inFlight = new Map<string, { sent: number; size: number }>();
  let last = 0;
  const status = (): void => {
    const parts = [...inFlight].map(([d, p]) => `${shortDigest(d)}${verb ? `: ${verb}` : ''} ${humanBytes(p.sent)}/${humanBytes(p.size)}`);
    out.write(`\r\x1b[K${parts.join('  ')}`);
  };
  return {
    line(text, done) {
      if (done !== undefined) inFlight.delete(done);
      out.write(tty ? `\r\x1b[K${text}\n` : `${text}\n`);
      if (tty && inFlight.size > 0) status();
    },
    onBytes: tty
      ? (d, sent) => {
          inFlight.set(d.digest, { sent, size: d.size });
          const now = Date.now();
          if (now - last >= 100) {
            last = now;
            status();
          }
        }
      : undefined,
  };
}
