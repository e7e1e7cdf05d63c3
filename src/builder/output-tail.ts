/** Keeping the last lines of a step's output for error messages without holding all of it. */

/** A bounded tail of a byte stream, split into lines on demand. */
export class OutputTail {
  private buf = '';

  constructor(private readonly maxChars = 16_384) {}

  /** Appends a chunk (decoded as UTF-8), dropping the oldest text beyond the bound. */
  push(chunk: Buffer | string): void {
    this.buf += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    if (this.buf.length > this.maxChars * 2) this.buf = this.buf.slice(-this.maxChars);
  }

  /** The last `n` non-empty lines, control characters other than tab removed. */
  lines(n = 20): string[] {
    const all = this.buf
      .split(/\r?\n|\r/)
      .map((l) => l.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '').trimEnd())
      .filter((l) => l.length > 0);
    return all.slice(-n);
  }
}
