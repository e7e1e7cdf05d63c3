/**
 * The layer module: reproducible tar writing (packDirectory/packSources), overlay upper dir →
 * layer conversion (whiteouts), hashing while streaming, compression, and safe extraction.
 */
export { packDirectory, packSources, type PackOptions } from './tar-writer.js';
export type { LayerMirror } from './mirror.js';
export type { PackedFile, PreviousPack } from './previous-pack.js';
export type { LayerSource, ExplicitEntry, EntryAttrs } from './walk.js';
export { hashTar, writeLayer, type TarDigest, type WrittenLayer } from './hash.js';
export { detectCompression, decompress, gzip, peek, MAGIC_BYTES, type Compression } from './compression.js';
export { adaptiveGzip, compressBlock, BLOCK_SIZE } from './adaptive-gzip.js';
export { WHITEOUT_PREFIX, OPAQUE_MARKER, compareBytes, normalizeArchivePath } from './paths.js';
export { extractLayer, type ExtractOptions, type ExtractLimits, type ExtractResult } from './extract.js';
