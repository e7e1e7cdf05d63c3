/**
 * The plan is plain data: what `apply` will do and why, in dependency order. The same structure is
 * rendered as text (Terraform-like) or JSON, stored with `plan -o`, and executed by `apply plan.json`.
 */
import type { Digest } from '../oci/digest.js';

/** Version of the JSON plan format; bump on incompatible changes. */
export const PLAN_FORMAT_VERSION = 1;

/** Where a tag lives: a registry of the spec (by name) and the full reference `host/repo:tag`. */
export interface TargetRef {
  /** The spec's registry name, or `local` for the local store when it is the only target. */
  registry: string;
  /** Full reference with tag, e.g. `127.0.0.1:5000/shop/web:1.4.2`. */
  ref: string;
}

/** Why an image must be built (`requested`: a build-only plan builds what it is asked for). */
export type BuildReason = 'new' | 'input changed' | 'base changed' | 'missing locally' | 'requested';

/** Why a tag must be written. */
export type PushReason = 'new tag' | 'new registry' | 'outdated' | 'drift' | 'not owned';

interface ActionBase {
  /** Stable id, unique within the plan (`build:web`, `push:web:local:127.0.0.1:5000/shop/web:1`). */
  id: string;
  /** Ids of actions that must finish first. */
  dependsOn: string[];
}

/** Build an image of the spec into the local store. */
export interface BuildAction extends ActionBase {
  kind: 'build';
  image: string;
  inputDigest: Digest;
  reason: BuildReason;
  /** Human detail, e.g. the base digest change. */
  detail?: string;
}

/** Upload an image's blobs and write its manifest under a tag. */
export interface PushAction extends ActionBase {
  kind: 'push';
  image: string;
  target: TargetRef;
  inputDigest: Digest;
  reason: PushReason;
  /** The manifest digest the tag points at now (undefined when absent). */
  current?: Digest;
}

/** Point a tag at a manifest the registry already holds (manifest PUT only). */
export interface RetagAction extends ActionBase {
  kind: 'retag';
  image: string;
  target: TargetRef;
  inputDigest: Digest;
  /** The manifest digest to write under the tag. */
  digest: Digest;
  /** A reference in the same registry that already holds that manifest. */
  source: string;
  current?: Digest;
  reason: PushReason;
}

/**
 * Delete a tag this project wrote (per its ownership record) that the spec no longer declares (prune).
 * Only the tag goes: it is pointed at a throw-away manifest of its own, which is then deleted by
 * digest, so the manifest it held and that manifest's other tags stay.
 */
export interface DeleteAction extends ActionBase {
  kind: 'delete';
  target: TargetRef;
  /** The manifest digest the tag holds now. */
  digest: Digest;
  /** The digest the ownership record lists for the tag (equal to `digest` unless `leftover`). */
  recorded: Digest;
  /** The tag holds the throw-away manifest of an interrupted prune: delete that by digest. */
  leftover?: boolean;
  reason: string;
}

/** A tag already in the desired state (shown with `=`; does nothing). */
export interface UnchangedAction extends ActionBase {
  kind: 'unchanged';
  image: string;
  target: TargetRef;
  digest?: Digest;
}

/** Any action. */
export type Action = BuildAction | PushAction | RetagAction | DeleteAction | UnchangedAction;

/**
 * A change to an ownership record that writes no tag. `adopt`: a declared, up-to-date tag holding
 * this project's image is not recorded yet (written by a dimg without records, or its record update
 * was lost); it is recorded so that prune can later delete it. `forget`: a recorded tag is gone, or
 * someone else overwrote it (it is no longer this project's); its entry is dropped and the tag kept.
 */
export interface OwnershipChange {
  kind: 'adopt' | 'forget';
  target: TargetRef;
  /** adopt: the digest to record; forget: the digest the record lists. */
  digest: Digest;
  reason: string;
}

/** A warning to show with the plan (e.g. a prune skipped because a digest is still in use). */
export interface PlanWarning {
  subject: string;
  message: string;
}

/** The observed state a plan was made from, kept so a stale saved plan can say what changed. */
export interface ObservedSnapshot {
  /** Every desired tag → the manifest digest it held (null: absent). */
  remote: Record<string, Digest | null>;
  /** Recorded tags prune looked at → what each held (null: gone). */
  inventory: Record<string, Digest | null>;
  /** This project's ownership records: every recorded tag → the digest recorded for it. */
  recorded?: Record<string, Digest>;
  /** Input digests the local store held. */
  local: Digest[];
  /** Image key → its input digest. */
  inputs: Record<string, Digest>;
}

/** A complete plan. */
export interface Plan {
  formatVersion: typeof PLAN_FORMAT_VERSION;
  /** sha256 of the spec file bytes and everything rendered from it (tags, targets). */
  specDigest: Digest;
  /** sha256 over the observed actual state the plan was computed from (for stale-plan detection). */
  observedFingerprint: Digest;
  /** The spec file the plan was made from: absolute in memory, relative to the plan file when saved. */
  specFile: string;
  /** What was observed (absent in plans saved by older versions). */
  observed?: ObservedSnapshot;
  createdAt: string;
  /** The options the plan was made with (a saved plan is re-checked with the same ones). */
  options: { prune: boolean; targets: string[] };
  actions: Action[];
  /** Ownership record bookkeeping apply does besides the actions (absent in plans of older dimg). */
  ownership: OwnershipChange[];
  warnings: PlanWarning[];
}

/** Counts per kind, for the summary line and exit codes. */
export interface PlanSummary {
  build: number;
  push: number;
  retag: number;
  delete: number;
  unchanged: number;
  /** Ownership record entries to add (adopt) or drop (forget). */
  ownership: number;
}

/** The parts of a plan that say what it changes. */
export type PlanChanges = Pick<Plan, 'actions'> & { ownership?: OwnershipChange[] };

/** Counts the plan's actions by kind, and its ownership record changes. */
export function summarize(plan: PlanChanges): PlanSummary {
  const s: PlanSummary = { build: 0, push: 0, retag: 0, delete: 0, unchanged: 0, ownership: plan.ownership?.length ?? 0 };
  for (const a of plan.actions) s[a.kind]++;
  return s;
}

/**
 * True when applying the plan would change something: an action other than `unchanged`, or an
 * ownership record change. "No changes" is printed only when this is false.
 */
export function hasChanges(plan: PlanChanges): boolean {
  return plan.actions.some((a) => a.kind !== 'unchanged') || (plan.ownership?.length ?? 0) > 0;
}
