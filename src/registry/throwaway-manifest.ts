/**
 * The throw-away manifest that deletes one tag alone (pure: bytes and digest, no I/O).
 *
 * Registries delete manifests, not tags: `DELETE /v2/<name>/manifests/<digest>` removes the manifest
 * and every tag on it, and distribution 2.8 answers 400 to a DELETE by tag. To remove one tag and
 * leave the manifest (and its other tags) alone, dimg points the tag at a manifest of its own that no
 * other tag holds, then deletes that manifest by digest.
 *
 * The manifest is unique to (project, tag, digest the record lists for the tag): its annotations name
 * all three. A random nonce is not needed for uniqueness, since dimg never writes it to another tag,
 * and being derivable matters: a prune interrupted between the PUT and the DELETE leaves the tag on
 * this manifest, and the next run recognises it from the record alone (the record still lists the
 * original digest) and finishes the delete.
 */
import { canonicalBytes } from '../oci/canonical-json.js';
import { sha256, type Digest } from '../oci/digest.js';
import { EMPTY_DESCRIPTOR } from '../oci/empty.js';
import { MediaType } from '../oci/media-types.js';
import type { ImageManifest } from '../oci/types.js';

/** `artifactType` of a throw-away manifest. */
export const UNTAG_ARTIFACT_TYPE = 'application/vnd.dimg.untag.v1';

/** Bytes and digest of a throw-away manifest. */
export interface ThrowAwayManifest {
  bytes: Buffer;
  digest: Digest;
  mediaType: string;
}

/**
 * The throw-away manifest replacing `ref` (`host/path:tag`), which `project` recorded as holding
 * `recorded`. Always the same bytes for the same three inputs. Config and the one layer are both the
 * empty descriptor (the `{}` blob, which must be in the repository before the PUT): registry 2.8
 * accepts zero layers, but the image-spec schema asks for at least one and other registries enforce
 * it, and the empty descriptor as layer is the spec's own advice for artifacts without content.
 */
export function throwAwayManifest(project: string, ref: string, recorded: Digest): ThrowAwayManifest {
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: UNTAG_ARTIFACT_TYPE,
    config: { ...EMPTY_DESCRIPTOR },
    layers: [{ ...EMPTY_DESCRIPTOR }],
    annotations: {
      'dev.dimg.untag.project': project,
      'dev.dimg.untag.ref': ref,
      'dev.dimg.untag.replaces': recorded,
    },
  };
  const bytes = canonicalBytes(manifest);
  return { bytes, digest: sha256(bytes), mediaType: MediaType.ociManifest };
}
