/**
 * Merging changes into an ownership record (pure). An update is read–merge–write, not atomic; see
 * record-ownership.ts for why a lost concurrent update can only make dimg keep a tag.
 */
import type { Digest } from '../oci/digest.js';
import type { OwnershipRecord } from '../registry/ownership-record.js';

/** What one apply learnt about one repository's tags. */
export interface RecordChanges {
  /** Tags this project wrote (after the write was read back) or adopted, with the digest now there. */
  written: { tag: string; digest: Digest }[];
  /**
   * Entries to drop: a tag apply deleted, or one that is gone or was overwritten by someone else.
   * Dropped only while the record still lists exactly `digest`, so a newer write by a concurrent
   * apply of the same project is not forgotten.
   */
  removed: { tag: string; digest: Digest }[];
}

/** `base` with `changes` applied; entries written get time `now` (ISO 8601). `base` is not modified. */
export function mergeRecord(base: OwnershipRecord, changes: RecordChanges, now: string): OwnershipRecord {
  const tags = { ...base.tags };
  for (const r of changes.removed) if (tags[r.tag]?.digest === r.digest) delete tags[r.tag];
  for (const w of changes.written) {
    // An unchanged entry keeps its time: the record then stays byte-identical and is not rewritten.
    if (tags[w.tag]?.digest !== w.digest) tags[w.tag] = { digest: w.digest, written: now };
  }
  return { ...base, tags };
}

/** True when two records list the same tags with the same digests and times. */
export function sameRecord(a: OwnershipRecord, b: OwnershipRecord): boolean {
  const ka = Object.keys(a.tags).sort();
  const kb = Object.keys(b.tags).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a.tags[k]!.digest === b.tags[k]!.digest && a.tags[k]!.written === b.tags[k]!.written);
}
