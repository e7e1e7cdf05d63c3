/**
 * The one error type dimg raises for anything a user can cause or fix, and the closed set of its codes.
 *
 * Every DimgError has a stable machine-readable `code`, a one-line `message` that names its subject
 * (an image, a file, a registry, a blob…), and a `hint` saying what to do next. The CLI prints
 * `error: MESSAGE` and `hint: HINT` on stderr and exits 1 (130/143 when a signal stopped the command,
 * see cli/cancellation.ts); any other thrown value is a bug and is printed with its stack.
 */

/**
 * The codes a registry's error body may carry (the distribution spec's, plus distribution's own), and
 * the ones dimg derives from a bare HTTP status; `registry/errors.ts` turns each into `REGISTRY_<CODE>`.
 * A body code outside this list falls back to the status's code, so the set stays closed.
 */
export const REGISTRY_WIRE_CODES = [
  // from an error body
  'BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID', 'MANIFEST_UNKNOWN', 'MANIFEST_UNVERIFIED', 'NAME_INVALID', 'NAME_UNKNOWN',
  'PAGINATION_NUMBER_INVALID', 'SIZE_INVALID', 'TAG_INVALID',
  // from an error body or from the HTTP status
  'UNAUTHORIZED', 'DENIED', 'UNSUPPORTED', 'TOOMANYREQUESTS', 'UNAVAILABLE', 'UNKNOWN', 'RANGE_INVALID',
  // from the HTTP status only
  'BAD_REQUEST', 'NOT_FOUND', 'CONFLICT', 'TOO_LARGE', 'UNEXPECTED_STATUS',
] as const;

/** One code of a registry's answer, before dimg prefixes it with `REGISTRY_`. */
export type RegistryWireCode = (typeof REGISTRY_WIRE_CODES)[number];

/** The codes dimg itself raises, by area. Registry answers add `REGISTRY_<wire code>` (see ErrorCode). */
export const DIMG_ERROR_CODES = [
  // spec files, Dockerfiles, ignore files, globs
  'SPEC_INVALID', 'SPEC_NOT_FOUND', 'SPEC_ORDER', 'DOCKERFILE_NOT_FOUND', 'CONTEXT_NOT_FOUND', 'GLOB_INVALID',
  'IGNORE_PATTERN_INVALID',
  // references, digests, platforms, manifests (oci/ and their checks)
  'REFERENCE_INVALID', 'TAG_INVALID', 'DIGEST_INVALID', 'DIGEST_MISMATCH', 'DIGEST_UNSUPPORTED', 'SIZE_MISMATCH',
  'PLATFORM_INVALID', 'PLATFORM_NOT_FOUND', 'MANIFEST_INVALID', 'MANIFEST_UNSUPPORTED', 'MEDIA_TYPE_UNSUPPORTED',
  // the local store
  'STORE_CORRUPT', 'STORE_LOCKED', 'STORE_UNSAFE', 'STORE_UNUSABLE', 'BLOB_CORRUPT', 'BLOB_NOT_FOUND',
  // images in the store and their configs
  'IMAGE_NOT_FOUND', 'IMAGE_AMBIGUOUS', 'IMAGE_CONFLICT', 'IMAGE_IN_USE', 'IMAGE_INVALID', 'IMAGE_NOT_IN_SPEC',
  'CHANGE_INVALID', 'HISTORY_INVALID', 'SOURCE_DATE_EPOCH_INVALID', 'IMPORT_SOURCE', 'ROOTFS_NOT_FOUND',
  // layers: writing, extracting, compression
  'LAYER_BAD_SOURCE', 'LAYER_CORRUPT', 'LAYER_DECOMPRESSOR_MISSING', 'LAYER_EXTRACT_FAILED', 'LAYER_INVALID',
  'LAYER_LIMIT', 'LAYER_NAME_ENCODING', 'LAYER_SOURCE_CHANGED', 'LAYER_TOOL_MISSING', 'LAYER_UNSAFE',
  'LAYER_XATTR_FAILED', 'SYMLINK_LOOP',
  // building: bases, COPY, RUN, secrets, users
  'BASE_NOT_FOUND', 'BUILD_CANCELLED', 'CONTEXT_MISSING', 'COPY_SOURCE_NOT_FOUND', 'COPY_SOURCE_OUTSIDE',
  'CHMOD_INVALID', 'RUN_FAILED', 'RUN_SANDBOX_FAILED', 'RUN_UNSUPPORTED', 'SECRET_INVALID', 'SECRET_MISSING',
  'SECRET_NOT_FOUND', 'SECRET_TARGET_INVALID', 'USER_NOT_FOUND', 'GROUP_NOT_FOUND',
  // plans, lock files, apply, watch
  'PLAN_INVALID', 'PLAN_MISMATCH', 'PLAN_NOT_FOUND', 'PLAN_STALE', 'APPLY_FAILED', 'LOCK_INVALID', 'LOCK_MISSING',
  'LOCK_STALE', 'TARGET_UNKNOWN', 'PRUNE_NEEDS_PROJECT', 'TAG_NOT_CONVERGED', 'OWNERSHIP_RECORD_FAILED',
  'OWNERSHIP_RECORD_INVALID', 'WATCH_CYCLE_FAILED', 'WATCH_PUSH_UNKNOWN',
  // registries: dimg's own transport and auth failures (answers are REGISTRY_<wire code>)
  'REGISTRY_AUTH_DOWNGRADE', 'REGISTRY_AUTH_INSECURE_REALM', 'REGISTRY_AUTH_INVALID', 'REGISTRY_CONNECTION',
  'REGISTRY_PAGINATION_LOOP', 'REGISTRY_REDIRECT_DOWNGRADE', 'REGISTRY_REDIRECT_INVALID', 'REGISTRY_REDIRECT_LOOP',
  'REGISTRY_RESPONSE_TOO_LARGE', 'REGISTRY_TLS', 'REGISTRY_UNREACHABLE', 'CA_FILE_UNREADABLE',
  // credentials and login
  'CREDENTIAL_HELPER_FAILED', 'CREDENTIAL_HELPER_MISSING', 'DOCKER_AUTH_CONFIG_INVALID', 'DOCKER_CONFIG_INVALID',
  'DOCKER_CONFIG_UNREADABLE', 'LOGIN_FAILED', 'LOGIN_FLAGS_CONFLICT', 'LOGIN_PASSWORD_REQUIRED',
  'LOGIN_USERNAME_REQUIRED',
  // transfers: pull, push, copy, untag, OCI layouts
  'PULL_ALL_TAGS_WITH_TAG', 'PUSH_CANCELLED', 'PUSH_NOT_AN_IMAGE', 'PUSH_TARGET_INVALID', 'TRANSFER_CANCELLED',
  'UNTAG_FAILED', 'OCI_LAYOUT_AMBIGUOUS', 'OCI_LAYOUT_INVALID',
  // archives: docker save / OCI archives, load and save
  'ARCHIVE_AMBIGUOUS', 'ARCHIVE_BASE_UNSUPPORTED', 'ARCHIVE_CORRUPT', 'ARCHIVE_INVALID', 'ARCHIVE_NOT_FOUND',
  'DIFF_ID_MISMATCH', 'LOAD_INPUT', 'NOTHING_TO_SAVE', 'SAVE_OUTPUT',
  // the command line and its process
  'FLAG_INVALID', 'TEMPLATE_INVALID', 'STDOUT_IS_TERMINAL', 'STDOUT_WRITE', 'CANCELLED', 'ABORTED',
  // a broken invariant that is still worth a message and a hint rather than a stack
  'INTERNAL',
] as const;

/**
 * Every code a DimgError can carry: dimg's own, and `REGISTRY_<wire code>` for a registry's answers.
 * Closed, so `new DimgError('TYPO', …)` and `isDimgError(e, 'TYPO')` do not compile.
 */
export type ErrorCode = (typeof DIMG_ERROR_CODES)[number] | `REGISTRY_${RegistryWireCode}`;

/** Every ErrorCode, once each, for tests and tools that enumerate them. */
export const ERROR_CODES: readonly ErrorCode[] = Object.freeze([
  ...DIMG_ERROR_CODES,
  ...REGISTRY_WIRE_CODES.map((c) => `REGISTRY_${c}` as const),
]);

/** A failure a user can cause or fix: a closed code, a message naming its subject, a hint (see above). */
export class DimgError extends Error {
  /** Stable identifier, e.g. `IMAGE_NOT_FOUND`; tests and scripts may match on it. */
  readonly code: ErrorCode;
  /** What the user can do about it; may be empty when there is nothing useful to say. */
  readonly hint: string;

  constructor(code: ErrorCode, message: string, hint = '', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DimgError';
    this.code = code;
    this.hint = hint;
  }
}

/** True for DimgErrors; when codes are given, only for a DimgError carrying one of them. */
export function isDimgError(err: unknown, ...codes: ErrorCode[]): err is DimgError {
  return err instanceof DimgError && (codes.length === 0 || codes.includes(err.code));
}

/** The message of any thrown value, for wrapping lower-level failures into a DimgError. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
