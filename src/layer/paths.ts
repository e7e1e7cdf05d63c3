/**
 * Archive path rules shared by the tar writer and the extractor: whiteout names (OCI image-spec
 * `layer.md`) and the normalisation of entry names into safe, root-relative component lists.
 */
import { DimgError } from '../errors.js';

/** Prefix of a whiteout file: `.wh.NAME` deletes NAME from lower layers. */
export const WHITEOUT_PREFIX = '.wh.';
/** Name of the opaque-directory marker: `DIR/.wh..wh..opq` hides every lower child of DIR. */
export const OPAQUE_MARKER = '.wh..wh..opq';
/** Prefix of AUFS metadata names (`.wh..wh.plnk` …); skipped on extraction, like moby does. */
export const AUFS_META_PREFIX = '.wh..wh.';

/** The error raised for every refused archive entry; `entry` is the name as written in the tar. */
export function unsafeEntry(entry: string, why: string, hint = 'the layer archive is malformed or malicious; do not use it'): DimgError {
  return new DimgError('LAYER_UNSAFE', `layer entry ${JSON.stringify(entry)}: ${why}`, hint);
}

/**
 * Splits a tar entry name into path components relative to the extraction root.
 * Leading `/` and `./` are stripped (absolute names are re-rooted), empty and `.` components are
 * dropped; any `..` component is refused (LAYER_UNSAFE) rather than cleaned away, so no name can
 * climb above the root. Returns [] for the root itself. NUL bytes are refused.
 */
export function entryComponents(name: string, subject = name): string[] {
  if (name.includes('\0')) throw unsafeEntry(subject, 'the name contains a NUL byte');
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw unsafeEntry(subject, 'the path contains ".." and would escape the target directory');
    parts.push(part);
  }
  return parts;
}

/**
 * Normalises an archive destination such as `/srv/app/` or `srv//app` into `srv/app`
 * (no leading or trailing slash; '' for the root). Refuses `..` like entryComponents.
 */
export function normalizeArchivePath(p: string): string {
  return entryComponents(p, p).join('/');
}

/** Byte-order comparison of two names, as UTF-8 (JavaScript's default sort is UTF-16 order). */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
