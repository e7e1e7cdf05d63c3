/**
 * Digests that identify what a plan was made from, so a saved plan can be refused when it is stale
 * and the watch loop can tell an edit that changes nothing from one that does.
 */
import { promises as fs } from 'node:fs';
import { canonicalJson } from '../oci/canonical-json.js';
import { sha256, type Digest } from '../oci/digest.js';
import type { Spec } from '../specfile/model.js';
import type { ResolvedSpec } from '../resolve/desired.js';

/**
 * What a plan was made for: the spec file's bytes and every image's desired identity and targets.
 * A saved plan is refused when this changes.
 */
export async function specDigestOf(spec: Spec, resolved: ResolvedSpec): Promise<Digest> {
  const bytes = await fs.readFile(spec.file);
  return sha256(canonicalJson({ file: sha256(bytes), images: resolved.desired.images }));
}

/**
 * A digest of the desired state: every image's input digest, base, local names and targets. Equal
 * digests mean nothing that goes into any image (nor where it goes) changed.
 */
export function desiredFingerprint(resolved: ResolvedSpec): Digest {
  return sha256(canonicalJson(resolved.desired));
}
