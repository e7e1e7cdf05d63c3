/**
 * The production wiring of store options: layers are unpacked into overlay lowerdirs by the layer
 * module's safe extractor. Kept apart from store.ts so the store itself does not depend on the layer code.
 */
import type { StoreOptions } from './store.js';

/** Store options with the real layer unpacker. */
export function storeOptions(): StoreOptions {
  return {
    unpack: async (tar, dir) => {
      const layer = await import('../layer/index.js');
      await layer.extractLayer(tar, dir, { mode: 'overlay' });
    },
  };
}
