/** The cache key of one step. */
import { canonicalJson } from '../oci/canonical-json.js';
import { sha256, type Digest } from '../oci/digest.js';
import { canonicalStep } from '../specfile/steps.js';
import type { Step } from '../specfile/model.js';

/** sha256 over the parent key, the canonical step and its input digests. */
export function stepKey(parent: Digest, step: Step, inputs: unknown): Digest {
  return sha256(canonicalJson({ v: 1, parent, step: canonicalStep(step), inputs }));
}
