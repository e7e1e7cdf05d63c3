/** The pure OCI model: re-exported for convenience. */
export * from './digest.js';
export * from './media-types.js';
export * from './types.js';
export * from './canonical-json.js';
export * from './reference.js';
export * from './platform.js';
