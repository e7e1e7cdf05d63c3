/**
 * Image references: `[domain/]path[:tag][@digest]`, parsed, validated and normalised the way the
 * Docker CLI does (`busybox` → `docker.io/library/busybox:latest`).
 */
import { DimgError } from '../errors.js';
import { parseDigest, type Digest } from './digest.js';

/**
 * The plain parts of a reference: what a ParsedReference carries and what the formatting helpers accept.
 * A value of this type may be a hand-made object literal; code that needs a checked, normalised
 * reference takes a ParsedReference.
 */
export interface Reference {
  /** Registry host with optional port, e.g. `docker.io`, `127.0.0.1:5000`. */
  readonly domain: string;
  /** Repository path within the registry, e.g. `library/busybox`. */
  readonly path: string;
  readonly tag?: string;
  readonly digest?: Digest;
}

/**
 * A parsed, normalised, immutable reference; only `parseReference` (and the `with…` copies) make one,
 * so holding a ParsedReference means it is valid. `tag` is set unless the reference was by digest only.
 * `toString()` is the canonical form (`docker.io/library/busybox:latest`), `familiar()` the one
 * people type (`busybox:latest`): format references with these, never by hand.
 */
export class ParsedReference implements Reference {
  readonly domain: string;
  readonly path: string;
  readonly tag?: string;
  readonly digest?: Digest;

  /** Use parseReference; the parts must already be valid and normalised. */
  private constructor(parts: Reference) {
    this.domain = parts.domain;
    this.path = parts.path;
    if (parts.tag !== undefined) this.tag = parts.tag;
    if (parts.digest !== undefined) this.digest = parts.digest;
    Object.freeze(this);
  }

  /** @internal parseReference's constructor: the parts were checked by the caller. */
  static fromValidParts(parts: Reference): ParsedReference {
    return new ParsedReference(parts);
  }

  /** `domain/path`: the repository's full name. */
  get repository(): string {
    return repositoryName(this);
  }

  /** The canonical full string `domain/path[:tag][@digest]`; parsing it gives an equal ParsedReference. */
  toString(): string {
    return formatReference(this);
  }

  /** JSON carries the canonical string, so a ParsedReference in plain data serialises as people expect. */
  toJSON(): string {
    return this.toString();
  }

  /** The short form with tag and digest, as `docker images` and error messages show it. */
  familiar(): string {
    return familiarString(this);
  }

  /** The short repository name without tag or digest (`busybox`, `shop/web`). */
  familiarName(): string {
    return familiarName(this);
  }

  /** True when both name the same repository, tag and digest. */
  equals(other: Reference): boolean {
    const same = this.domain === other.domain && this.path === other.path;
    return same && this.tag === other.tag && this.digest === other.digest;
  }

  /** A copy with another tag and no digest; throws TAG_INVALID for a bad tag. */
  withTag(tag: string): ParsedReference {
    validateTag(tag);
    return new ParsedReference({ domain: this.domain, path: this.path, tag });
  }

  /** A copy pinned to a digest (the tag is kept for display). */
  withDigest(digest: Digest): ParsedReference {
    return new ParsedReference({ domain: this.domain, path: this.path, tag: this.tag, digest });
  }

  /** The repository alone: no tag, no digest. */
  repositoryOnly(): ParsedReference {
    return new ParsedReference({ domain: this.domain, path: this.path });
  }
}

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
const IPV6 = '\\[[a-fA-F0-9:]+\\]';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_NAME}|${IPV6})(?::[0-9]+)?$`);
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const PATH_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const ID_RE = /^[a-f0-9]{64}$/;

/** The default registry and its legacy aliases. */
export const DOCKER_HUB = 'docker.io';
const HUB_ALIASES = new Set(['index.docker.io', 'registry-1.docker.io']);
const NAME_MAX = 255;

/** True when `tag` matches the tag grammar `[\w][\w.-]{0,127}`. */
export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

/** Throws TAG_INVALID naming the tag when it does not match the grammar. */
export function validateTag(tag: string, subject = 'tag'): string {
  if (!isValidTag(tag)) {
    throw new DimgError(
      'TAG_INVALID',
      `${subject} "${tag}" is not a valid tag`,
      'a tag is 1–128 characters of letters, digits, _, . and -, and may not start with . or -',
    );
  }
  return tag;
}

/** True when `s` looks like a full 64-hex image ID rather than a name. */
export function isImageId(s: string): boolean {
  return ID_RE.test(s);
}

/**
 * Parses and normalises a reference. A missing domain becomes `docker.io`, a one-component
 * docker.io path gets `library/`, and `latest` is added when there is neither tag nor digest
 * (unless `defaultTag` is false). Throws REFERENCE_INVALID with the reason. Given a ParsedReference, returns
 * it unchanged, so code handed an already parsed one needs no second parse.
 */
export function parseReference(input: string | ParsedReference, opts: { defaultTag?: boolean } = {}): ParsedReference {
  // Already parsed (a caller converted before its callees): parsing is the identity on a ParsedReference.
  if (input instanceof ParsedReference) return input;
  const bad = (why: string, hint = 'a reference looks like [registry[:port]/]repository[:tag][@sha256:digest]') =>
    new DimgError('REFERENCE_INVALID', `invalid reference "${input}": ${why}`, hint);
  if (input.length === 0) throw bad('it is empty');
  if (isImageId(input)) throw bad('a bare 64-hex string is an image ID, not a name');

  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    try {
      digest = parseDigest(rest.slice(at + 1), `reference "${input}"`);
    } catch (e) {
      throw bad(`the digest part "${rest.slice(at + 1)}" is not a sha256 digest`);
    }
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isValidTag(tag)) throw bad(`the tag "${tag}" is not valid`, 'a tag is 1–128 characters of letters, digits, _, . and -');
  }
  if (rest.length === 0) throw bad('the repository name is empty');

  let domain = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      domain = first;
      path = rest.slice(slash + 1);
    }
  }
  if (!DOMAIN_RE.test(domain)) throw bad(`"${domain}" is not a valid registry host`);
  if (HUB_ALIASES.has(domain)) domain = DOCKER_HUB;
  if (path !== path.toLowerCase()) throw bad('repository names must be lowercase');
  if (!PATH_RE.test(path)) throw bad(`"${path}" is not a valid repository path`);
  if (domain === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  if (`${domain}/${path}`.length > NAME_MAX) throw bad(`the name is longer than ${NAME_MAX} characters`);
  if (tag === undefined && digest === undefined && opts.defaultTag !== false) tag = 'latest';
  return ParsedReference.fromValidParts({ domain, path, tag, digest });
}

/** `domain/path` — the repository's full name. */
export function repositoryName(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The full normalised string: `domain/path[:tag][@digest]`. */
export function formatReference(ref: Reference): string {
  let s = repositoryName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** The short form people type: `docker.io/` and `library/` removed, as `docker images` shows. */
export function familiarName(ref: Reference): string {
  let name = repositoryName(ref);
  if (ref.domain === DOCKER_HUB) {
    name = ref.path.startsWith('library/') && ref.path.split('/').length === 2 ? ref.path.slice('library/'.length) : ref.path;
  }
  return name;
}

/** The familiar form with tag and digest: what error messages and `ls` show. */
export function familiarString(ref: Reference): string {
  let s = familiarName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** A copy of `ref` with another tag (and no digest); same as `ref.withTag(tag)`. */
export function withTag(ref: ParsedReference, tag: string): ParsedReference {
  return ref.withTag(tag);
}

/** A copy of `ref` pinned to a digest (tag kept for display); same as `ref.withDigest(digest)`. */
export function withDigest(ref: ParsedReference, digest: Digest): ParsedReference {
  return ref.withDigest(digest);
}
