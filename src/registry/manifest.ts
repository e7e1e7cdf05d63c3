/**
 * Manifest bytes fetched from a registry: verified against the digest asked for and the one the
 * registry states, with the media type decided from Content-Type and, when that is generic, the body.
 */
import { DimgError } from '../errors.js';
import { parseDigest, sha256, type Digest } from '../oci/digest.js';
import { MediaType, isImageManifestType, isIndexType } from '../oci/media-types.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../oci/types.js';

import type { ManifestBytes } from '../endpoint/types.js';

export type { ManifestBytes };

/** Largest manifest dimg reads (registries reject more than 4 MiB on push). */
export const MANIFEST_MAX_BYTES = 8 * 1024 * 1024;

/** The media type of a manifest: Content-Type when specific, else the body's `mediaType`, else its shape. */
export function manifestMediaType(contentType: string | undefined, bytes: Buffer, subject: string): string {
  const ct = contentType?.split(';')[0]?.trim();
  if (ct && (isImageManifestType(ct) || isIndexType(ct))) return ct;
  if (ct === MediaType.dockerSchema1 || ct === MediaType.dockerSchema1Signed) throw schema1(subject);
  let body: { mediaType?: unknown; manifests?: unknown; config?: unknown; schemaVersion?: unknown };
  try {
    body = JSON.parse(bytes.toString('utf8')) as typeof body;
  } catch {
    throw new DimgError('MANIFEST_INVALID', `${subject}: the manifest is not valid JSON`, 'the registry returned something that is not a manifest');
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new DimgError('MANIFEST_INVALID', `${subject}: the manifest is not a JSON object`, 'the registry returned something that is not a manifest');
  }
  if (body.schemaVersion === 1) throw schema1(subject);
  if (typeof body.mediaType === 'string' && (isImageManifestType(body.mediaType) || isIndexType(body.mediaType))) return body.mediaType;
  if (Array.isArray(body.manifests)) return MediaType.ociIndex;
  if (body.config && typeof body.config === 'object') return MediaType.ociManifest;
  throw new DimgError('MANIFEST_UNSUPPORTED', `${subject}: unsupported manifest type ${ct ?? '(none)'}`, 'dimg reads OCI and Docker schema2 manifests and indexes');
}

function schema1(subject: string): DimgError {
  return new DimgError('MANIFEST_UNSUPPORTED', `${subject}: Docker schema1 manifests are not supported`, 'push the image again with a current tool (schema2 or OCI)');
}

/**
 * Verifies fetched manifest bytes: their digest must equal `expected` (when fetched by digest) and the
 * registry's `Docker-Content-Digest` (when sent). Returns the body digest.
 */
export function verifyManifest(bytes: Buffer, expected: Digest | undefined, stated: string | undefined, subject: string): Digest {
  const actual = sha256(bytes);
  if (expected && actual !== expected) {
    throw new DimgError('DIGEST_MISMATCH', `${subject}: manifest has digest ${actual}, expected ${expected}`, 'the registry or a proxy altered the manifest; do not trust this registry\'s answer');
  }
  if (stated && stated.startsWith('sha256:') && stated !== actual) {
    throw new DimgError('DIGEST_MISMATCH', `${subject}: manifest has digest ${actual} but the registry states ${stated}`, 'the registry or a proxy altered the manifest; retry, and check any proxy in between');
  }
  return actual;
}

/**
 * Parses an image manifest's JSON and checks its shape: `config` and every entry of `layers` are
 * descriptors (string media type, sha256 digest, non-negative integer size). Anything else is
 * MANIFEST_INVALID (DIGEST_UNSUPPORTED for another digest algorithm) naming the manifest, so callers
 * never walk a malformed tree or turn a hostile digest into a path.
 */
export function parseImageManifest(m: ManifestBytes, subject = `manifest ${m.digest}`): ImageManifest {
  const v = parseJsonObject(m, subject);
  checkDescriptor(v.config, `${subject}: config`);
  if (!Array.isArray(v.layers)) throw invalid(subject, 'has no layers list');
  v.layers.forEach((l, i) => checkDescriptor(l, `${subject}: layer ${i}`));
  return v as unknown as ImageManifest;
}

/** Parses an index's JSON and checks that `manifests` is a list of descriptors (see parseImageManifest). */
export function parseIndex(m: ManifestBytes, subject = `index ${m.digest}`): ImageIndex {
  const v = parseJsonObject(m, subject);
  if (!Array.isArray(v.manifests)) throw invalid(subject, 'has no manifests list');
  v.manifests.forEach((d, i) => checkDescriptor(d, `${subject}: manifest ${i}`));
  return v as unknown as ImageIndex;
}

function parseJsonObject(m: ManifestBytes, subject: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(m.bytes.toString('utf8'));
  } catch {
    throw invalid(subject, 'is not valid JSON');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw invalid(subject, 'is not a JSON object');
  return v as Record<string, unknown>;
}

function checkDescriptor(d: unknown, what: string): void {
  if (!d || typeof d !== 'object' || Array.isArray(d)) throw invalid(what, 'is not a descriptor');
  const x = d as Record<string, unknown>;
  if (typeof x.mediaType !== 'string') throw invalid(what, 'has no media type');
  if (typeof x.digest !== 'string') throw invalid(what, 'has no digest');
  parseDigest(x.digest, what);
  if (typeof x.size !== 'number' || !Number.isSafeInteger(x.size) || x.size < 0) throw invalid(what, `has an invalid size ${JSON.stringify(x.size)}`);
}

function invalid(subject: string, why: string): DimgError {
  return new DimgError('MANIFEST_INVALID', `${subject} ${why}`, 'the registry returned a malformed manifest; the image cannot be used as is');
}

/** The descriptor of fetched manifest bytes. */
export function descriptorOf(m: ManifestBytes): Descriptor {
  return { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
}
