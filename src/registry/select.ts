/**
 * Choosing one image out of an index for a platform (the host's by default), as `docker pull` does.
 */
import { DimgError } from '../errors.js';
import { formatPlatform, hostPlatform, platformMatches } from '../oci/platform.js';
import type { Descriptor, ImageIndex, Platform } from '../oci/types.js';

/**
 * The entry of `index` for `wanted` (default: the host platform). Among several matches the first
 * wins (index order is the publisher's preference). Throws PLATFORM_NOT_FOUND naming `subject` and
 * listing the platforms the index offers.
 */
export function selectPlatform(index: ImageIndex, subject: string, wanted: Platform = hostPlatform()): Descriptor {
  const hit = index.manifests.find((d) => platformMatches(wanted, d.platform));
  if (hit) return hit;
  const offered = index.manifests
    .map((d) => d.platform)
    .filter((p): p is Platform => p !== undefined && p.os !== 'unknown')
    .map(formatPlatform);
  throw new DimgError(
    'PLATFORM_NOT_FOUND',
    `${subject} has no image for platform ${formatPlatform(wanted)}${offered.length ? ` (it has ${[...new Set(offered)].join(', ')})` : ''}`,
    'choose one of its platforms with --platform, or copy every platform with --all-platforms',
  );
}
