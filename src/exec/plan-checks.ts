/**
 * Refusals a plan makes before it does any work worth keeping: a `--target` that names no image, a
 * prune without a declared project, and a `--frozen-lock` the lock cannot honour. Each fails with a DimgError naming the fix.
 */
import { DimgError } from '../errors.js';
import { didYouMean } from '../specfile/problems.js';
import type { Spec } from '../specfile/model.js';
import type { ResolvedSpec } from '../resolve/desired.js';
import { lockPathFor, type LockFile } from '../resolve/lock.js';

/**
 * Every image named on the command line (`--target` by default, or `flag`, e.g. `--update`) must be an
 * image of the spec; a typo must not plan nothing and exit 0.
 */
export function checkTargets(targets: readonly string[], spec: Spec, flag = '--target'): void {
  const keys = spec.images.map((i) => i.key);
  for (const t of targets) {
    if (keys.includes(t)) continue;
    throw new DimgError('TARGET_UNKNOWN', `${flag} ${t}: ${spec.file} has no image "${t}"${didYouMean(t, keys)}`, `choose one of: ${keys.join(', ')}`);
  }
}

/**
 * Prune deletes what the project's ownership records list, and records are keyed by the project:
 * two checkouts whose directories share a name would share records and delete each other's tags.
 * So prune needs `project:` written in the spec.
 */
export function checkPruneProject(spec: Spec): void {
  if (spec.projectDeclared) return;
  throw new DimgError('PRUNE_NEEDS_PROJECT', `--prune: ${spec.file} does not name its project, and the directory name "${spec.project}" could be another checkout's too`, `add \`project: ${spec.project}\` (a name unique to this spec) to ${spec.file}`);
}

/** `--frozen-lock` needs a lock file: without one, every base would be resolved afresh. */
export function checkLockPresent(lock: LockFile | undefined, specFile: string): asserts lock is LockFile {
  if (!lock) throw new DimgError('LOCK_MISSING', `--frozen-lock: there is no ${lockPathFor(specFile)}`, 'create it with `dimg lock` and commit it');
}

/**
 * `--frozen-lock`: every registry base the spec needs must be pinned in the lock. The pins are used
 * as they are (the resolver reads them first), so an upstream retag changes nothing: CI builds
 * exactly what was reviewed. Only a base the lock does not know fails, since resolving it would
 * change the lock, which CI must not do silently.
 */
export function checkFrozen(resolved: ResolvedSpec, lock: LockFile, specFile: string): void {
  // Sorted: images are keyed concurrently, so the map's order is completion order.
  const missing = [...resolved.pins.keys()].filter((key) => !lock.bases[key]).sort();
  if (missing.length === 0) return;
  const [ref, platform] = missing[0]!.split('|') as [string, string];
  const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : '';
  throw new DimgError('LOCK_STALE', `--frozen-lock: base ${ref} (${platform}) is not pinned in ${lockPathFor(specFile)}${more}`, 'run `dimg lock` to pin it and commit images.lock');
}
