/**
 * The production wiring of store options: layers are unpacked into overlay lowerdirs by the layer
 * module's safe extractor. Kept apart from store.ts so the store itself does not depend on the layer code
 * (the layer module imports nothing from the store, so this static import makes no cycle).
 */
import { extractLayer } from '../layer/extract.js';
import type { StoreOptions } from './store.js';

/** Store options with the real layer unpacker. */
export function storeOptions(): StoreOptions {
  return {
    unpack: (tar, dir) => extractLayer(tar, dir, { mode: 'overlay' }).then(() => undefined),
  };
}
