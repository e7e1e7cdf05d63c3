/**
 * Reading and writing a project's ownership record in one repository (format in ownership-record.ts).
 * A read that finds no record answers undefined; a record about another repository (copied here by a
 * mirroring tool) or another project counts as no record, so it can never make dimg delete anything.
 */
import { Readable } from 'node:stream';
import { DimgError, isDimgError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { EMPTY_BLOB, EMPTY_DESCRIPTOR } from '../oci/empty.js';
import { decodeRecord, encodeRecord, recordLayerOf, stateTag, type OwnershipRecord } from './ownership-record.js';
import { parseImageManifest, type ManifestBytes } from './manifest.js';
import type { RemoteRepository } from './repository.js';
import { MANIFEST_ABSENT_CODES } from './errors.js';

/** A record as read: its content and the digest of the manifest it came from. */
export interface StoredRecord {
  record: OwnershipRecord;
  digest: Digest;
}

/** Largest record dimg reads (a record of 100 000 tags is about 15 MiB). */
const RECORD_MAX_BYTES = 32 << 20;

/**
 * Reads `project`'s record in `repo` (whose full name is `repository`, `host/path`). Undefined when
 * the repository or the reserved tag does not exist, or when the record found is about another
 * repository or project (then `warn` says so). Throws OWNERSHIP_RECORD_INVALID when the tag holds
 * something that is not a record, and the registry's errors otherwise.
 */
export async function readRecord(repo: RemoteRepository, project: string, repository: string, warn?: (m: string) => void): Promise<StoredRecord | undefined> {
  const tag = stateTag(project);
  const subject = `${repository}:${tag}`;
  let m: ManifestBytes;
  try {
    m = await repo.getManifest(tag);
  } catch (e) {
    if (isDimgError(e, ...MANIFEST_ABSENT_CODES)) return undefined;
    throw e;
  }
  const layer = recordLayerOf(parseImageManifest(m, subject), subject);
  if (layer.size > RECORD_MAX_BYTES) {
    throw new DimgError('OWNERSHIP_RECORD_INVALID', `ownership record ${subject} is ${layer.size} bytes, more than dimg reads (${RECORD_MAX_BYTES})`, 'delete that tag; dimg writes a fresh record on the next apply');
  }
  const chunks: Buffer[] = [];
  for await (const c of await repo.getBlob(layer.digest, layer.size)) chunks.push(c as Buffer);
  const record = decodeRecord(Buffer.concat(chunks), subject);
  if (record.project !== project || record.repository !== repository) {
    // A copy (skopeo sync, a backup) of a record made for another place: it proves nothing here.
    warn?.(`${subject} is the ownership record of project ${record.project} in ${record.repository}, not of this repository; it is ignored (nothing is pruned there) and replaced on the next write`);
    return undefined;
  }
  return { record, digest: m.digest };
}

/**
 * Writes `record` under the project's reserved tag: the empty config blob and the JSON layer are
 * uploaded unless present, then the manifest is PUT. Returns the manifest digest.
 */
export async function writeRecord(repo: RemoteRepository, record: OwnershipRecord): Promise<Digest> {
  const enc = encodeRecord(record);
  await uploadEmptyBlob(repo);
  await repo.uploadBlob(enc.layer.descriptor.digest, enc.layer.bytes.length, () => Readable.from([enc.layer.bytes]));
  return repo.putManifest(stateTag(record.project), enc.manifest.bytes, enc.manifest.mediaType);
}

/**
 * Makes sure `repo` holds the OCI empty blob (`{}`), the config (and layer) of dimg's own artifacts:
 * ownership records and throw-away manifests. One HEAD when it is there.
 */
export async function uploadEmptyBlob(repo: RemoteRepository): Promise<void> {
  await repo.uploadBlob(EMPTY_DESCRIPTOR.digest, EMPTY_BLOB.length, () => Readable.from([EMPTY_BLOB]));
}
