/**
 * `docker history` rows from an image config, following Docker's rules (moby
 * daemon/images/image_history.go): walk `history[]` oldest to newest; every entry without
 * `empty_layer` consumes the next layer and shows that layer's size, `empty_layer` entries show 0.
 * Rows are returned newest first; only the top row carries the image ID, the rest are `<missing>`.
 */
import { DimgError } from '../errors.js';
import type { Store } from '../store/store.js';
import type { LocalImage } from './local-image.js';

/** One history row. */
export interface HistoryRow {
  /** The image ID for the top row, `<missing>` for the others. */
  id: string;
  /** RFC 3339 time, or '' when the entry has none. */
  created: string;
  createdBy: string;
  /** Layer size in bytes (uncompressed when known), 0 for metadata-only steps. */
  size: number;
  comment: string;
  emptyLayer: boolean;
}

/**
 * The history rows of `image`, newest first. An image without history gets one row per layer
 * (as Docker shows images made by tools that write none). More non-empty entries than layers is
 * the error Docker reports ("too many non-empty layers").
 */
export async function imageHistory(store: Store, image: LocalImage): Promise<HistoryRow[]> {
  const layers = image.manifest.layers;
  const diffIds = image.config.rootfs?.diff_ids ?? [];
  const sizes: number[] = [];
  for (let i = 0; i < layers.length; i++) {
    const diffId = diffIds[i];
    const rec = diffId ? await store.layers.get(diffId).catch(() => undefined) : undefined;
    sizes.push(rec?.size ?? layers[i]!.size);
  }
  const history = image.config.history?.length ? image.config.history : layers.map(() => ({}) as { created?: string; created_by?: string; comment?: string; empty_layer?: boolean });
  const rows: HistoryRow[] = [];
  let next = 0;
  for (const h of history) {
    let size = 0;
    if (!h.empty_layer) {
      if (next >= sizes.length) {
        throw new DimgError('HISTORY_INVALID', `image ${image.id} has more non-empty history entries than layers (${sizes.length})`, 'the image config is inconsistent; rebuild or re-pull the image');
      }
      size = sizes[next++]!;
    }
    rows.push({ id: '<missing>', created: h.created ?? '', createdBy: h.created_by ?? '', size, comment: h.comment ?? '', emptyLayer: Boolean(h.empty_layer) });
  }
  rows.reverse();
  if (rows[0]) rows[0].id = image.id;
  return rows;
}
