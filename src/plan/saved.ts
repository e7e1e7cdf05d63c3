/**
 * Saved plans (`dimg plan -o plan.json`, then `dimg apply plan.json`): where the spec file is found
 * when the plan is applied from another checkout path, and why a saved plan no longer fits the
 * world it is applied to, in terms a reviewer can check (which tag moved from what to what).
 */
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { canonicalJson } from '../oci/canonical-json.js';
import { sha256, type Digest } from '../oci/digest.js';
import { parseReference } from '../oci/reference.js';
import type { ActualState, DesiredState, ObservedRecord } from './state.js';
import type { ObservedSnapshot, Plan } from './types.js';

/** The canonical reference string of each tag of a record's repository (the snapshot's keys). */
function tagRefOf(r: ObservedRecord): (tag: string) => string {
  const repository = parseReference(r.repository, { defaultTag: false });
  return (tag) => repository.withTag(tag).toString();
}

/** The observed state a plan was made from, small enough to keep in the plan file. */
export function snapshotOf(desired: DesiredState, actual: ActualState): ObservedSnapshot {
  const remote: Record<string, Digest | null> = {};
  for (const [ref, t] of [...actual.remote].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) remote[ref] = t?.digest ?? null;
  // What prune looked at: each recorded, undeclared tag and what it holds now.
  const inventory: Record<string, Digest | null> = {};
  const pruneSeen = actual.records.flatMap((r) => {
    const refOf = tagRefOf(r);
    return [...r.now].map(([tag, digest]) => [refOf(tag), digest] as const);
  });
  for (const [ref, digest] of pruneSeen.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) inventory[ref] = digest;
  const recorded: Record<string, Digest> = {};
  const records = actual.records.flatMap((r) => {
    const refOf = tagRefOf(r);
    return [...r.tags].map(([tag, digest]) => [refOf(tag), digest] as const);
  });
  for (const [ref, digest] of records.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) recorded[ref] = digest;
  const inputs: Record<string, Digest> = {};
  for (const i of desired.images) inputs[i.key] = i.inputDigest;
  return { remote, inventory, recorded, local: [...actual.local.byInputDigest.keys()].sort(), inputs };
}

/**
 * A digest of everything observed that the plan's actions depend on (stale-plan detection): the
 * snapshot without the desired side (`inputs`, which specDigest covers). One source for both, so a
 * plan refused as stale can always say what changed.
 */
export function observedFingerprint(snapshot: ObservedSnapshot): Digest {
  const { remote, inventory, recorded, local } = snapshot;
  return sha256(canonicalJson({ remote, inventory, recorded: recorded ?? {}, local }));
}

/** The plan as written to `planFile`: its spec file relative to the plan file's directory. */
export function planForFile(plan: Plan, planFile: string): Plan {
  const from = dirname(resolve(planFile));
  return { ...plan, specFile: relative(from, plan.specFile) || '.' };
}

/** The spec file of a plan read from `planFile` (relative paths are the plan file directory's). */
export function specFileOf(saved: Plan, planFile: string): string {
  return isAbsolute(saved.specFile) ? saved.specFile : resolve(dirname(resolve(planFile)), saved.specFile);
}

/**
 * What differs between the state a saved plan recorded and the state now, one line per difference
 * (at most `limit`, then a count). Empty when the saved plan has no snapshot (older plan files).
 */
export function describeChanges(saved: ObservedSnapshot | undefined, now: ObservedSnapshot, limit = 10): string[] {
  if (!saved) return [];
  const out: string[] = [];
  const short = (d: Digest | null | undefined) => (d ? d.slice(0, 19) : 'nothing');
  for (const [key, input] of Object.entries(now.inputs)) {
    const before = saved.inputs[key];
    if (before === undefined) out.push(`image ${key} is new in the spec`);
    else if (before !== input) out.push(`image ${key}: its inputs changed (input digest ${short(before)} → ${short(input)})`);
  }
  for (const key of Object.keys(saved.inputs)) if (!(key in now.inputs)) out.push(`image ${key} was removed from the spec`);
  const tags = (s: ObservedSnapshot) => ({ ...s.inventory, ...s.remote });
  const [was, is] = [tags(saved), tags(now)];
  for (const ref of [...new Set([...Object.keys(was), ...Object.keys(is)])].sort()) {
    const a = was[ref] ?? null;
    const b = is[ref] ?? null;
    if (a === b) continue;
    if (a === null) out.push(`tag ${ref} appeared (${short(b)})`);
    else if (b === null) out.push(`tag ${ref} was deleted (it held ${short(a)})`);
    else out.push(`tag ${ref} moved from ${short(a)} to ${short(b)}`);
  }
  const [wasRecorded, isRecorded] = [saved.recorded ?? {}, now.recorded ?? {}];
  for (const ref of [...new Set([...Object.keys(wasRecorded), ...Object.keys(isRecorded)])].sort()) {
    const a = wasRecorded[ref];
    const b = isRecorded[ref];
    if (a === b) continue;
    if (a === undefined) out.push(`the ownership record now lists ${ref} (${short(b)})`);
    else if (b === undefined) out.push(`the ownership record no longer lists ${ref}`);
    else out.push(`the ownership record of ${ref} moved from ${short(a)} to ${short(b)}`);
  }
  const local = new Set(now.local);
  const gone = saved.local.filter((d) => !local.has(d));
  const added = now.local.filter((d) => !saved.local.includes(d));
  if (gone.length) out.push(`the local store no longer holds ${gone.length} image${gone.length === 1 ? '' : 's'} the plan counted on`);
  if (added.length) out.push(`the local store now holds ${added.length} more image${added.length === 1 ? '' : 's'}`);
  return out.length > limit ? [...out.slice(0, limit), `… and ${out.length - limit} more`] : out;
}
