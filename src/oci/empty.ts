/**
 * The OCI empty descriptor (image-spec `manifest.md`, "Guidance for an Empty Descriptor"): the blob
 * `{}` with media type `application/vnd.oci.empty.v1+json`, used as the config of artifacts that
 * have none. Registries check that a manifest's config blob exists, so it is uploaded like any blob.
 */
import { sha256 } from './digest.js';
import { MediaType } from './media-types.js';
import type { Descriptor } from './types.js';

/** The two bytes of the empty blob. */
export const EMPTY_BLOB: Buffer = Buffer.from('{}', 'utf8');

/** Its descriptor, with the bytes inlined in `data` as the spec recommends. */
export const EMPTY_DESCRIPTOR: Descriptor = Object.freeze({
  mediaType: MediaType.ociEmpty,
  digest: sha256(EMPTY_BLOB),
  size: EMPTY_BLOB.length,
  data: EMPTY_BLOB.toString('base64'),
}) as Descriptor;
