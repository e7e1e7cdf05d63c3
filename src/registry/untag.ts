/**
 * Deleting one tag alone (prune), on registries that can only delete manifests by digest: the tag is
 * pointed at a throw-away manifest of its own (throwaway-manifest.ts), which is then deleted by
 * digest. The manifest the tag held stays, with any other tag on it; an untagged manifest is left for
 * the registry's garbage collection, as a tag deletion leaves it on any registry.
 *
 * Always done this way, even when no other tag seemed to share the manifest: the tag listing is old
 * by the time of the delete, and a copy made meanwhile must not disappear with it.
 */
import { DimgError, isDimgError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { RemoteRepository } from './repository.js';
import { throwAwayManifest } from './throwaway-manifest.js';
import { uploadEmptyBlob } from './ownership-io.js';

/** What became of the tag: deleted, already gone, or moved by someone else (then left alone). */
export type UntagOutcome = { kind: 'deleted' } | { kind: 'absent' } | { kind: 'moved'; now: Digest };

/**
 * Deletes tag `tag` of `repo` (full reference `ref`) when it holds `recorded`, the digest `project`
 * recorded writing there, or the throw-away manifest of an interrupted earlier attempt. A tag holding
 * anything else is not touched (`moved`). An interruption between the two requests leaves the tag
 * on the throw-away manifest, which the next call recognises and deletes. Throws UNTAG_FAILED naming
 * the tag when the registry refuses (e.g. deletes disabled).
 */
export async function untag(repo: RemoteRepository, tag: string, ref: string, project: string, recorded: Digest): Promise<UntagOutcome> {
  const throwAway = throwAwayManifest(project, ref, recorded);
  const head = await repo.headManifest(tag);
  if (!head) return { kind: 'absent' };
  if (head.digest !== recorded && head.digest !== throwAway.digest) return { kind: 'moved', now: head.digest };
  try {
    let put = head.digest === recorded;
    // The throw-away manifest's config and layer: uploaded (or found: one HEAD) once, not per retry.
    await uploadEmptyBlob(repo);
    for (let attempt = 1; ; attempt++) {
      if (put) {
        // Between the HEAD above and this PUT another writer could move the tag, and this PUT would
        // replace their write; registries offer no conditional PUT, so the window is kept to one request.
        await repo.putManifest(tag, throwAway.bytes, throwAway.mediaType);
      }
      await repo.deleteManifest(throwAway.digest).catch((e: unknown) => {
        if (!isDimgError(e, 'REGISTRY_MANIFEST_UNKNOWN', 'REGISTRY_NOT_FOUND')) throw e;
      });
      // Registry 2.8 drops the tags of a deleted manifest by scanning the repository's tags, and a
      // concurrent delete in the same repository can make that scan miss one: the tag stays listed,
      // pointing at nothing. Checked and repaired (the throw-away manifest put back and deleted again).
      if (!(await repo.listTags()).includes(tag)) return { kind: 'deleted' };
      if (attempt >= 3) throw new DimgError('UNTAG_FAILED', `cannot delete tag ${ref}: the registry still lists it after deleting its throw-away manifest ${throwAway.digest} ${attempt} times`, 'run apply --prune again');
      // Still listed: either the scan above missed it (the tag points at nothing), or a slow listing,
      // or someone wrote the tag since. Look again before writing: another writer's tag is theirs.
      const now = await repo.headManifest(tag);
      if (now && now.digest !== recorded && now.digest !== throwAway.digest) return { kind: 'moved', now: now.digest };
      put = true;
    }
  } catch (e) {
    if (isDimgError(e, 'UNTAG_FAILED')) throw e;
    const why = isDimgError(e) ? `${e.code}: ${e.message}` : String(e);
    throw new DimgError(
      'UNTAG_FAILED',
      `cannot delete tag ${ref}: ${why}`,
      /UNSUPPORTED/.test(why)
        ? 'the registry has deletes disabled (distribution: storage.delete.enabled: true, or REGISTRY_STORAGE_DELETE_ENABLED=true); the tag may now hold a throw-away manifest, which the next apply --prune deletes'
        : 'run apply --prune again; a tag left on a throw-away manifest is deleted then',
      { cause: e },
    );
  }
}
