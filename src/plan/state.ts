/**
 * The two sides the planner compares. Desired: what the spec says, with every image's input digest
 * computed (base digest + step cache keys). Actual: what the local store and the registries hold,
 * observed with HEAD/GET requests. No state file: the registries are the truth.
 */
import type { Digest } from '../oci/digest.js';
import type { TargetRef } from './types.js';

/** One image the spec declares, with its identity. */
export interface DesiredImage {
  key: string;
  /** Digest of everything that goes into the image: base digest plus all step keys. */
  inputDigest: Digest;
  /** The resolved base (manifest digest of a registry/store base, or the input digest of a spec image). */
  baseDigest?: Digest;
  /** Keys of spec images this one is built from (graph edges). */
  dependsOn: string[];
  /** Full names the image gets in the local store. */
  localRefs: string[];
  /** Registry tags the image must be written to. */
  targets: TargetRef[];
}

/** The desired state of a whole spec. */
export interface DesiredState {
  project: string;
  /** Images in dependency order (bases first). */
  images: DesiredImage[];
  /** Whether tags this project owns but no longer declares are to be deleted. */
  prune: boolean;
}

/** What a registry tag holds now, read from its manifest's annotations. */
export interface RemoteTag {
  /** The manifest digest the tag resolves to. */
  digest: Digest;
  /** `dev.dimg.input-digest` annotation, when dimg wrote it. */
  inputDigest?: Digest;
  /** `dev.dimg.base-digest` annotation, when dimg wrote it. */
  baseDigest?: Digest;
  /** `dev.dimg.project` annotation. */
  project?: string;
}

/** A tag found in a registry while looking for prune candidates. */
export interface ObservedTag extends RemoteTag {
  registry: string;
  ref: string;
}

/** What the local store holds. */
export interface LocalState {
  /** Input digests of images present in the store (by the input-digest annotation), to manifest digests. */
  byInputDigest: Map<Digest, Digest>;
  /** Local names to the input digest of the image they point at (undefined when not built by dimg). */
  refs: Map<string, Digest | undefined>;
}

/** Everything observed. */
export interface ActualState {
  local: LocalState;
  /** Every desired target ref → what it holds, or null when the tag does not exist. */
  remote: Map<string, RemoteTag | null>;
  /** Tags in the project's repositories (for prune), when prune is on; otherwise empty. */
  inventory: ObservedTag[];
}
