/**
 * The ownership record's format (pure codec, no I/O). Per project and per repository the project
 * writes to, dimg keeps in that same repository a small OCI artifact under a reserved tag listing
 * every tag this project wrote there and the manifest digest it wrote. Prune deletes only tags listed
 * here that still hold exactly that digest: a copy made by another tool is never in the record, so it
 * is never deleted. The record lives in the registry, not on the runner, because CI runners are
 * stateless.
 *
 * Format: an OCI image manifest with `artifactType` {@link STATE_ARTIFACT_TYPE}, the empty descriptor
 * as config and one layer {@link STATE_LAYER_TYPE} holding canonical JSON
 * `{schemaVersion:1, project, repository, tags:{TAG:{digest, written}}}`.
 */
import { DimgError } from '../errors.js';
import { canonicalBytes } from '../oci/canonical-json.js';
import { isDigest, sha256, type Digest } from '../oci/digest.js';
import { EMPTY_DESCRIPTOR } from '../oci/empty.js';
import { MediaType } from '../oci/media-types.js';
import { isValidTag } from '../oci/reference.js';
import type { Descriptor, ImageManifest } from '../oci/types.js';

/** `artifactType` of the record manifest. */
export const STATE_ARTIFACT_TYPE = 'application/vnd.dimg.state.v1';
/** Media type of the record's one layer (the JSON document). */
export const STATE_LAYER_TYPE = 'application/vnd.dimg.state.v1+json';
/** Every reserved tag starts with this; a spec may not declare such a tag. */
export const STATE_TAG_PREFIX = 'dimg-state-';
/** Annotation on the record manifest naming its project (never `dev.dimg.project`: see below). */
export const ANNOTATION_STATE_PROJECT = 'dev.dimg.state.project';

/** One tag this project wrote: the manifest digest it wrote there, and when. */
export interface RecordEntry {
  digest: Digest;
  /** ISO 8601 time of the write (informational; never used to decide anything). */
  written: string;
}

/** The record of one project in one repository. */
export interface OwnershipRecord {
  schemaVersion: 1;
  project: string;
  /** `host/path` of the repository the record is about (a record copied elsewhere is ignored). */
  repository: string;
  tags: Record<string, RecordEntry>;
}

/** The reserved tag holding `project`'s record: `dimg-state-PROJECT`, hashed when not a valid tag. */
export function stateTag(project: string): string {
  const plain = `${STATE_TAG_PREFIX}${project}`;
  if (isValidTag(plain)) return plain;
  // Only reachable for project names outside the spec grammar; the hash keeps names apart.
  return `${STATE_TAG_PREFIX}${sha256(project).slice('sha256:'.length, 'sha256:'.length + 32)}`;
}

/** True for a tag in the reserved namespace (any project's record). */
export function isStateTag(tag: string): boolean {
  return tag.startsWith(STATE_TAG_PREFIX);
}

/** An empty record. */
export function emptyRecord(project: string, repository: string): OwnershipRecord {
  return { schemaVersion: 1, project, repository, tags: {} };
}

/** The bytes to upload for a record: the layer blob, and the manifest that points at it. */
export interface EncodedRecord {
  layer: { descriptor: Descriptor; bytes: Buffer };
  manifest: { bytes: Buffer; digest: Digest; mediaType: string };
}

/**
 * Encodes a record deterministically (canonical JSON for both blob and manifest): the same record
 * always gives the same digest, so an unchanged record is recognised without writing it.
 * The manifest carries no `dev.dimg.project` annotation on purpose: older dimg versions prune by
 * that annotation and would delete the record.
 */
export function encodeRecord(record: OwnershipRecord): EncodedRecord {
  const bytes = canonicalBytes(record);
  const layer: Descriptor = { mediaType: STATE_LAYER_TYPE, digest: sha256(bytes), size: bytes.length };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: STATE_ARTIFACT_TYPE,
    config: { ...EMPTY_DESCRIPTOR },
    layers: [layer],
    annotations: { [ANNOTATION_STATE_PROJECT]: record.project },
  };
  const manifestBytes = canonicalBytes(manifest);
  return { layer: { descriptor: layer, bytes }, manifest: { bytes: manifestBytes, digest: sha256(manifestBytes), mediaType: MediaType.ociManifest } };
}

/**
 * The layer descriptor of a record manifest, checked to be one (artifact type and one JSON layer).
 * Throws OWNERSHIP_RECORD_INVALID naming `subject` otherwise.
 */
export function recordLayerOf(manifest: ImageManifest, subject: string): Descriptor {
  const layer = manifest.layers?.[0];
  if (manifest.artifactType !== STATE_ARTIFACT_TYPE || manifest.layers.length !== 1 || !layer || layer.mediaType !== STATE_LAYER_TYPE) {
    throw invalid(subject, `is not a dimg ownership record (artifactType ${String(manifest.artifactType)})`);
  }
  return layer;
}

/**
 * Parses a record's JSON layer. Throws OWNERSHIP_RECORD_INVALID naming `subject` when it is not a
 * well-formed version-1 record; unknown fields are ignored (a newer writer may add some).
 */
export function decodeRecord(bytes: Buffer, subject: string): OwnershipRecord {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw invalid(subject, 'is not valid JSON');
  }
  const r = v as Partial<OwnershipRecord> | null;
  if (!r || typeof r !== 'object' || r.schemaVersion !== 1) throw invalid(subject, `has schemaVersion ${JSON.stringify(r?.schemaVersion)}; this dimg reads version 1`);
  if (typeof r.project !== 'string' || typeof r.repository !== 'string' || !r.tags || typeof r.tags !== 'object' || Array.isArray(r.tags)) {
    throw invalid(subject, 'lacks project, repository or tags');
  }
  const tags: Record<string, RecordEntry> = {};
  for (const [tag, e] of Object.entries(r.tags)) {
    if (!isValidTag(tag) || !e || typeof e !== 'object' || typeof e.digest !== 'string' || !isDigest(e.digest)) throw invalid(subject, `has a malformed entry for tag ${JSON.stringify(tag)}`);
    tags[tag] = { digest: e.digest, written: typeof e.written === 'string' ? e.written : '' };
  }
  return { schemaVersion: 1, project: r.project, repository: r.repository, tags };
}

function invalid(subject: string, why: string): DimgError {
  return new DimgError(
    'OWNERSHIP_RECORD_INVALID',
    `ownership record ${subject} ${why}`,
    'delete that tag to let dimg write a fresh record (prune then keeps every tag it no longer knows it wrote), or upgrade dimg if a newer version wrote it',
  );
}
