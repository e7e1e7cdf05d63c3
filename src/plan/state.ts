/**
 * The two sides the planner compares. Desired: what the spec says, with every image's input digest
 * computed (base digest + step cache keys). Actual: what the local store and the registries hold,
 * observed with HEAD/GET requests. No state file on the runner: the registries are the truth, and
 * what this project wrote there is the ownership record kept in each repository (ownership-record.ts).
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
  /** Whether tags this project wrote (per its ownership records) but no longer declares are to be deleted. */
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

/** This project's ownership record in one repository, as observed. */
export interface ObservedRecord {
  /** The spec's registry name. */
  registry: string;
  /** `host/path`. */
  repository: string;
  /** Tag → the manifest digest this project recorded writing there (empty: no record). */
  tags: Map<string, Digest>;
  /**
   * For prune: what each recorded tag the spec no longer declares holds now (null: the tag is gone).
   * Tags not looked at (prune off, or declared) are absent.
   */
  now: Map<string, Digest | null>;
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
  /**
   * This project's ownership records: one per repository the spec declares a tag in, plus (with prune)
   * every repository of the spec's registries that holds one.
   */
  records: ObservedRecord[];
}
