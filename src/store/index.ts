/** The local store: public API. */
export { Store, defaultStoreRoot, type StoreOptions } from './store.js';
export { BlobStore, type BlobInfo } from './blobs.js';
export { type ImageEntry } from './refs.js';
export { type LayerRecord, type LayerBlob } from './layers.js';
export { chainIds, type LayerDir, type LayerUnpacker } from './overlay.js';
export { type CacheEntry } from './cache.js';
export { collectGarbage, type GcResult, type GcOptions } from './gc.js';
