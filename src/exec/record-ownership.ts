/**
 * The last step of apply: bring this project's ownership record of each repository it touched up to
 * date. Tags apply wrote (read back, so the write is known to have landed) and adopted tags are
 * added; tags it deleted, and entries whose tag is gone or was overwritten by someone else, are
 * dropped. Runs after a partial failure too, recording what did succeed.
 *
 * Why a lost concurrent update can only make dimg keep a tag, never delete one. An update is GET,
 * merge, PUT; two applies racing can both GET the old record and the later PUT wins, so the other's
 * changes are lost. What can be lost:
 * - an added entry: that tag is not in the record, and prune deletes only recorded tags, so it is
 *   kept. If it is still declared, the next apply adopts it again (it holds this project's image).
 * - a dropped entry, which comes back. Prune acts on an entry only while its tag holds exactly the
 *   recorded digest, the manifest this project wrote there. A tag that was deleted, or overwritten
 *   by someone else, does not hold it, so the entry deletes nothing and is dropped again.
 * No update ever adds an entry for a tag this project did not write itself (or, for adoption, one
 * holding this project's own image, as desired, under a tag the spec declares), so no interleaving
 * of updates can make prune delete a tag the project did not write. The one remaining case is a tag
 * someone else rewrites with exactly the manifest this project wrote there: it cannot be told from
 * the original and is treated as this project's.
 */
import { DimgError, isDimgError, messageOf } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { parseReference, type ParsedReference } from '../oci/reference.js';
import { mergeRecord, sameRecord, type RecordChanges } from '../plan/ownership.js';
import { targetReference, type OwnershipChange } from '../plan/types.js';
import type { RegistryClient } from '../registry/client.js';
import { readRecord, writeRecord } from '../registry/ownership-io.js';
import { emptyRecord } from '../registry/ownership-record.js';

/**
 * What an apply did to tags, by full reference (parsed, or the canonical string of a plan target, which
 * is parsed here).
 */
export interface TagOutcomes {
  /** Tags written and read back, with the digest they hold. */
  written: { ref: string | ParsedReference; digest: Digest }[];
  /** Record entries to drop (tag deleted, or found moved by someone else), with the recorded digest. */
  removed: { ref: string | ParsedReference; digest: Digest }[];
}

/**
 * Updates `project`'s record in every repository named by `outcomes` or `ownership` (the plan's
 * adopt/forget changes). An adoption is recorded only if the tag still holds the adopted digest.
 * Returns one OWNERSHIP_RECORD_FAILED error per repository whose record could not be updated (the
 * tags there are then kept by prune, never deleted); it does not throw.
 */
export async function recordOwnership(client: RegistryClient, project: string, outcomes: TagOutcomes, ownership: readonly OwnershipChange[], now = new Date().toISOString()): Promise<DimgError[]> {
  type Entry = { name: ParsedReference; changes: RecordChanges; adopt: { tag: string; digest: Digest }[] };
  const byRepo = new Map<string, Entry>();
  const entry = (ref: ParsedReference) => {
    let e = byRepo.get(ref.repository);
    if (!e) {
      e = { name: ref.repositoryOnly(), changes: { written: [], removed: [] }, adopt: [] };
      byRepo.set(ref.repository, e);
    }
    return e;
  };
  const tagOf = (ref: ParsedReference) => ref.tag ?? 'latest';
  for (const w of outcomes.written) {
    const ref = parseReference(w.ref);
    entry(ref).changes.written.push({ tag: tagOf(ref), digest: w.digest });
  }
  for (const r of outcomes.removed) {
    const ref = parseReference(r.ref);
    entry(ref).changes.removed.push({ tag: tagOf(ref), digest: r.digest });
  }
  for (const o of ownership) {
    const ref = targetReference(o.target);
    if (o.kind === 'adopt') entry(ref).adopt.push({ tag: tagOf(ref), digest: o.digest });
    else entry(ref).changes.removed.push({ tag: tagOf(ref), digest: o.digest });
  }
  const failures = await Promise.all([...byRepo].map(async ([repository, { name, changes, adopt }]) => {
    try {
      const repo = client.repository(name);
      // The plan saw these tags holding the image; only what still does is recorded.
      for (const a of adopt) if ((await repo.headManifest(a.tag))?.digest === a.digest) changes.written.push(a);
      const stored = await readRecord(repo, project, repository);
      const base = stored?.record ?? emptyRecord(project, repository);
      const merged = mergeRecord(base, changes, now);
      if (stored ? sameRecord(merged, stored.record) : Object.keys(merged.tags).length === 0) return undefined;
      await writeRecord(repo, merged);
      return undefined;
    } catch (e) {
      return new DimgError(
        'OWNERSHIP_RECORD_FAILED',
        `cannot update the ownership record of project ${project} in ${repository}: ${isDimgError(e) ? `${e.code}: ${e.message}` : messageOf(e)}`,
        'the tags written stay; until the record is updated prune keeps them. Run apply again: declared tags are recorded then',
        { cause: e },
      );
    }
  }));
  return failures.filter((f): f is DimgError => f !== undefined);
}
