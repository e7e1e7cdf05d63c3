/**
 * Making a plan for a spec file: load the spec, resolve bases (lock, registry, store), compute the
 * desired state, observe the store and registries, diff. The session keeps everything it learnt so
 * `apply` reuses it instead of hashing or asking again.
 */
import { promises as fs } from 'node:fs';
import { resolve } from 'node:path';
import { DimgError } from '../errors.js';
import { canonicalJson } from '../oci/canonical-json.js';
import { sha256, type Digest } from '../oci/digest.js';
import { loadSpec } from '../spec/load.js';
import { didYouMean } from '../spec/problems.js';
import { nodeSpecPorts } from '../spec/node-ports.js';
import type { Spec } from '../spec/model.js';
import { RegistryClient } from '../registry/client.js';
import type { Store } from '../store/store.js';
import { FileDigests } from '../build/file-digests.js';
import { diff, repositoryOf } from '../plan/diff.js';
import { snapshotOf } from '../plan/saved.js';
import { PLAN_FORMAT_VERSION, type Plan } from '../plan/types.js';
import type { ActualState } from '../plan/state.js';
import { BaseResolver } from '../resolve/bases.js';
import { resolveSpec, type ResolvedSpec } from '../resolve/desired.js';
import { lockPathFor, readLock, type LockFile } from '../resolve/lock.js';
import { observe, readTags } from '../resolve/observe.js';
import { clientOptionsForSpec } from './spec-client.js';

/** How to make a plan. */
export interface PlanOptions {
  specFile: string;
  /** The local store (optional: plan works without one, as on a fresh CI runner). */
  store: Store;
  /** Delete owned tags the spec no longer declares (also on when the spec says `prune: true`). */
  prune?: boolean;
  /** Limit to these images and their dependencies. */
  targets?: string[];
  /** Fail when the lock is missing or does not pin a base the spec needs (pinned digests are used as they are). */
  frozenLock?: boolean;
  /** Use this lock instead of reading images.lock (`dimg lock --update` passes one with pins left out). */
  lock?: LockFile;
  env?: NodeJS.ProcessEnv;
  warn?: (message: string) => void;
}

/** Everything a plan was made from. Close it with `close()`. */
export interface PlanSession {
  spec: Spec;
  store: Store;
  client: RegistryClient;
  resolved: ResolvedSpec;
  actual: ActualState;
  digests: FileDigests;
  plan: Plan;
  close(): Promise<void>;
}

/** Loads the spec and makes its plan. */
export async function planSpec(opts: PlanOptions): Promise<PlanSession> {
  const specFile = resolve(opts.specFile);
  const env = opts.env ?? process.env;
  const spec = await loadSpec(specFile, nodeSpecPorts({ env }));
  const client = new RegistryClient(clientOptionsForSpec(spec, env, opts.warn));
  const digests = await FileDigests.load(opts.store.root, opts.store.tmpDir);
  try {
    const lock = opts.lock ?? (await readLock(lockPathFor(spec.file)));
    if (opts.frozenLock && !lock) {
      throw new DimgError('LOCK_MISSING', `--frozen-lock: there is no ${lockPathFor(spec.file)}`, 'create it with `dimg lock` and commit it');
    }
    // Registry reads do not depend on the input digests: start them while those are computed.
    const remote = readTags(client, spec.images.flatMap((i) => i.targets.map((t) => t.ref)));
    remote.catch(() => undefined);
    const bases = new BaseResolver({ store: opts.store, client, lock, warn: opts.warn });
    checkTargets(opts.targets ?? [], spec);
    if ((opts.prune || spec.prune) && !spec.projectDeclared) {
      // Prune deletes what the project's ownership records list; two checkouts whose directories
      // share a name would share records and delete each other's tags.
      throw new DimgError('PRUNE_NEEDS_PROJECT', `--prune: ${spec.file} does not name its project, and the directory name "${spec.project}" could be another checkout's too`, `add \`project: ${spec.project}\` (a name unique to this spec) to ${spec.file}`);
    }
    const resolved = await resolveSpec(spec, { bases, digests, prune: Boolean(opts.prune || spec.prune) });
    if (opts.frozenLock) checkFrozen(resolved, lock!, spec.file);
    const pruneRepositories = resolved.desired.prune ? await repositoriesToPrune(spec, client, resolved, opts.warn) : undefined;
    const actual = await observe(resolved.desired, { store: opts.store, client, pruneRepositories, remote, warn: opts.warn });
    const { actions, ownership, warnings } = diff(resolved.desired, actual, { targetImages: opts.targets });
    if (resolved.desired.prune && opts.targets?.length) {
      warnings.push({ subject: '--prune', message: `prune is not done with --target (${opts.targets.join(', ')}): it looks at every tag of the project, so it runs only for the whole spec; run without --target to prune` });
    }
    const plan: Plan = {
      formatVersion: PLAN_FORMAT_VERSION,
      specDigest: await specDigestOf(spec, resolved),
      observedFingerprint: fingerprint(actual),
      specFile: spec.file,
      observed: snapshotOf(resolved.desired, actual),
      createdAt: new Date().toISOString(),
      options: { prune: Boolean(opts.prune || spec.prune), targets: opts.targets ?? [] },
      actions,
      ownership,
      warnings,
    };
    await digests.save();
    return { spec, store: opts.store, client, resolved, actual, digests, plan, close: async () => client.close() };
  } catch (e) {
    client.close();
    throw e;
  }
}

/** Every `--target` must name an image of the spec; a typo must not plan nothing and exit 0. */
function checkTargets(targets: readonly string[], spec: Spec): void {
  const keys = spec.images.map((i) => i.key);
  for (const t of targets) {
    if (keys.includes(t)) continue;
    throw new DimgError('TARGET_UNKNOWN', `--target ${t}: ${spec.file} has no image "${t}"${didYouMean(t, keys)}`, `choose one of: ${keys.join(', ')}`);
  }
}

/**
 * What a plan was made for: the spec file's bytes and every image's desired identity and targets.
 * A saved plan is refused when this changes.
 */
async function specDigestOf(spec: Spec, resolved: ResolvedSpec): Promise<Digest> {
  const bytes = await fs.readFile(spec.file);
  return sha256(canonicalJson({ file: sha256(bytes), images: resolved.desired.images }));
}

/** A digest of everything observed that the plan's actions depend on (stale-plan detection). */
export function fingerprint(actual: ActualState): Digest {
  const remote = [...actual.remote.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([ref, t]) => [ref, t?.digest ?? null, t?.inputDigest ?? null]);
  const records = actual.records.map((r) => [r.repository, [...r.tags].sort(), [...r.now].sort()]);
  const local = [...actual.local.byInputDigest.keys()].sort();
  return sha256(canonicalJson({ remote, records, local }));
}

/**
 * The repositories prune looks at, per registry of the spec (pushed to or not): every repository under
 * the registry's path prefix (from the catalog), so tags of images removed from the spec are found too.
 * A registry without a catalog falls back to the repositories the spec still declares, with a warning
 * where the spec pushes to it.
 */
async function repositoriesToPrune(spec: Spec, client: RegistryClient, resolved: ResolvedSpec, warn?: (m: string) => void): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const used = new Set(resolved.desired.images.flatMap((i) => i.targets.map((t) => t.registry)));
  // Every registry of the spec, also one no image pushes to any more: removing a project's last
  // image from a registry must still prune the tags it left there.
  for (const r of Object.values(spec.registries)) {
    const declared = resolved.desired.images.flatMap((i) => i.targets.filter((t) => t.registry === r.name).map((t) => repositoryOf(t.ref)));
    let repos: string[];
    try {
      const prefix = r.prefix ? `${r.prefix.replace(/\/+$/, '')}/` : '';
      repos = (await client.catalog(r.host)).filter((name) => name.startsWith(prefix)).map((name) => `${r.host}/${name}`);
    } catch (e) {
      // Only worth a warning where the spec still pushes; elsewhere there is nothing declared to fall back on.
      if (used.has(r.name)) warn?.(`registry ${r.name}: cannot list its repositories (${(e as Error).message}); prune looks only at repositories the spec declares`);
      repos = [];
    }
    out.set(r.name, [...new Set([...declared, ...repos])].sort());
  }
  return out;
}

/**
 * `--frozen-lock`: every registry base the spec needs must be pinned in the lock. The pins are used
 * as they are (the resolver reads them first), so an upstream retag changes nothing: CI builds
 * exactly what was reviewed. Only a base the lock does not know fails, since resolving it would
 * change the lock, which CI must not do silently.
 */
function checkFrozen(resolved: ResolvedSpec, lock: LockFile, specFile: string): void {
  // Sorted: images are keyed concurrently, so the map's order is completion order.
  const missing = [...resolved.pins.keys()].filter((key) => !lock.bases[key]).sort();
  if (missing.length === 0) return;
  const [ref, platform] = missing[0]!.split('|') as [string, string];
  const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : '';
  throw new DimgError('LOCK_STALE', `--frozen-lock: base ${ref} (${platform}) is not pinned in ${lockPathFor(specFile)}${more}`, 'run `dimg lock` to pin it and commit images.lock');
}
