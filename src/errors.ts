/**
 * The one error type dimg raises for anything a user can cause or fix.
 *
 * Every DimgError has a stable machine-readable `code`, a one-line `message` that names its subject
 * (an image, a file, a registry, a blob…), and a `hint` saying what to do next. The CLI prints
 * `error: MESSAGE` and `hint: HINT` on stderr and exits 1 (130/143 when a signal stopped the command,
 * see cli/cancellation.ts); any other thrown value is a bug and is printed with its stack.
 */
export class DimgError extends Error {
  /** Stable identifier, e.g. `IMAGE_NOT_FOUND`; tests and scripts may match on it. */
  readonly code: string;
  /** What the user can do about it; may be empty when there is nothing useful to say. */
  readonly hint: string;

  constructor(code: string, message: string, hint = '', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DimgError';
    this.code = code;
    this.hint = hint;
  }
}

/** True for DimgErrors, optionally of one code. */
export function isDimgError(err: unknown, code?: string): err is DimgError {
  return err instanceof DimgError && (code === undefined || err.code === code);
}

/** The message of any thrown value, for wrapping lower-level failures into a DimgError. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
