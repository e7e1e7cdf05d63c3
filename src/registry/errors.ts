/**
 * Turning registry answers into DimgErrors: `{"errors":[{code,message,detail}]}` bodies (or bare
 * statuses, as HEAD responses have no body) become `REGISTRY_<CODE>` errors whose message names the
 * registry and the repository, with a hint that says what to do.
 */
import { DimgError, REGISTRY_WIRE_CODES, type ErrorCode, type RegistryWireCode } from '../errors.js';
import { redactPatterns } from './redact.js';

/** What a failed request was about, for the message. */
export interface ErrorSubject {
  /** Registry host as the user wrote it (`127.0.0.1:5000`, `docker.io`). */
  registry: string;
  /** Repository path, when the request was about one. */
  repository?: string;
  /** The object within the repository: `manifest latest`, `blob sha256:…`, `tag list`. */
  object?: string;
}

/**
 * The codes a manifest read fails with when the tag, the manifest or the whole repository is absent
 * (registry 2.8 says NAME_UNKNOWN for a repository never pushed; some proxies answer a bare 404).
 */
export const MANIFEST_ABSENT_CODES: readonly ErrorCode[] = Object.freeze([
  'REGISTRY_MANIFEST_UNKNOWN',
  'REGISTRY_NAME_UNKNOWN',
  'REGISTRY_NOT_FOUND',
]);

/** One entry of a registry error body. */
export interface RegistryErrorEntry {
  code: string;
  message?: string;
  detail?: unknown;
}

const STATUS_CODES: Record<number, RegistryWireCode> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'DENIED',
  404: 'NOT_FOUND',
  405: 'UNSUPPORTED',
  409: 'CONFLICT',
  413: 'TOO_LARGE',
  416: 'RANGE_INVALID',
  429: 'TOOMANYREQUESTS',
  500: 'UNKNOWN',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'UNAVAILABLE',
};

const HINTS: Partial<Record<RegistryWireCode, string>> = {
  UNAUTHORIZED: 'log in with `dimg login REGISTRY` or check the credentials configured for this registry',
  DENIED: 'the credentials in use are not allowed to do this; check the repository name and your permissions',
  NAME_UNKNOWN: 'check the repository name (it may not exist yet, or you may lack access to it)',
  MANIFEST_UNKNOWN: 'check the tag or digest; `dimg image tags REPO` lists the tags the registry has',
  BLOB_UNKNOWN: 'the registry lacks this blob; push the image again',
  MANIFEST_BLOB_UNKNOWN: 'push every layer and the config before the manifest',
  BLOB_UPLOAD_UNKNOWN: 'the upload session expired or was cancelled; retry the push',
  BLOB_UPLOAD_INVALID: 'the upload was rejected; retry the push',
  DIGEST_INVALID: 'the content does not match its digest; the local copy may be corrupt',
  SIZE_INVALID: 'the content does not have the size its descriptor states',
  MANIFEST_INVALID: 'the registry rejected the manifest (unsupported media type, or larger than 4 MiB)',
  NAME_INVALID: 'repository names are lowercase path components separated by /',
  TAG_INVALID: 'a tag is 1–128 characters of letters, digits, _, . and -',
  UNSUPPORTED: 'the registry does not support this operation (deletes need storage.delete.enabled)',
  TOOMANYREQUESTS: 'the registry is rate-limiting; wait and retry, or log in for a higher limit',
  UNAVAILABLE: 'the registry is unavailable; retry later',
  UNKNOWN: 'the registry failed internally; retry later or check its logs',
  NOT_FOUND: 'check the registry address and repository name',
};

const WIRE_CODES: ReadonlySet<string> = new Set(REGISTRY_WIRE_CODES);

/** True when a registry's error code is one dimg knows (and so has an ErrorCode for). */
function isWireCode(code: string): code is RegistryWireCode {
  return WIRE_CODES.has(code);
}

/** Where a request went, as the message prefix: `registry R, repository P, OBJECT`. */
export function describeSubject(s: ErrorSubject): string {
  const parts = [`registry ${s.registry}`];
  if (s.repository) parts.push(`repository ${s.repository}`);
  if (s.object) parts.push(s.object);
  return parts.join(', ');
}

/** Parses an error body; returns [] when it is not the documented JSON shape. */
export function parseErrorBody(body: string): RegistryErrorEntry[] {
  try {
    const v = JSON.parse(body) as { errors?: unknown };
    if (!Array.isArray(v.errors)) return [];
    return v.errors
      .filter((e): e is { code: string; message?: string; detail?: unknown } => typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string')
      .map((e) => ({ code: e.code, message: typeof e.message === 'string' ? e.message : undefined, detail: e.detail }));
  } catch {
    return [];
  }
}

/**
 * The DimgError for a failed response. The code comes from the body's first error entry when it is a
 * known wire code, else from the status (`REGISTRY_` prefixed either way); the message names the
 * subject and carries the registry's own message(s). `body` is passed through pattern redaction
 * defensively (a misbehaving proxy could echo headers back).
 */
export function registryError(status: number, body: string, subject: ErrorSubject): DimgError {
  const entries = parseErrorBody(body);
  const fromStatus = STATUS_CODES[status] ?? (status >= 500 ? 'UNKNOWN' : 'UNEXPECTED_STATUS');
  const first = entries[0]?.code;
  const code = first !== undefined && isWireCode(first) ? first : fromStatus;
  let detail: string;
  if (entries.length > 0) {
    // A code outside the known set is kept in the message, as it is the registry's own word for the failure.
    const word = (e: RegistryErrorEntry) => (isWireCode(e.code) ? '' : `${e.code}: `);
    detail = entries.map((e) => word(e) + (e.message ?? e.code.toLowerCase().replace(/_/g, ' '))).join('; ');
  } else {
    const text = body.trim().split('\n')[0]?.slice(0, 200) ?? '';
    detail = text ? `HTTP ${status}: ${text}` : `HTTP ${status}`;
  }
  let hint = HINTS[code] ?? (status >= 500 ? HINTS.UNKNOWN! : '');
  // Go's TLS servers answer a plain-HTTP request with this 400: a loopback registry is reached over
  // plain HTTP unless marked insecure, which tries HTTPS first.
  if (status === 400 && /HTTP request to an HTTPS server/i.test(body)) hint = 'the registry serves HTTPS only: mark it insecure (`insecure: true` in the spec, or --insecure) so dimg tries HTTPS first (loopback registries are otherwise reached over plain HTTP)';
  return new DimgError(`REGISTRY_${code}`, redactPatterns(`${describeSubject(subject)}: ${detail}`), hint);
}

/** REGISTRY_REDIRECT_DOWNGRADE: an HTTPS registry pointed at a plain-HTTP URL (`what` it did). */
export function downgradeError(subject: ErrorSubject, what: string, to: URL): DimgError {
  return new DimgError(
    'REGISTRY_REDIRECT_DOWNGRADE',
    `${describeSubject(subject)}: over HTTPS, the registry ${what} on plain HTTP (${to.origin}); dimg does not follow HTTPS to plain HTTP`,
    'the registry (or the storage behind it) must hand out https:// URLs; ask its operator',
  );
}
