/**
 * The layer module: reproducible tar writing (packDirectory/packSources) with observers on its entry
 * stream (offset recording, the lowerdir mirror) and reuse of a previous pack's contents, overlay upper
 * dir → layer conversion (whiteouts), hashing while streaming, compression, and safe extraction.
 */
export { packDirectory, packSources, packSourcesToFile, type PackOptions } from './tar-writer.js';
export type { TarEntry, TarObserver, ContentSource, EntrySource } from './tar-entry.js';
export { LayerMirror, type MirrorOptions } from './mirror.js';
export { OffsetRecorder } from './offset-record.js';
export { PreviousTarReader, type PackedFile, type PreviousPack } from './previous-pack.js';
export type { LayerSource, ExplicitEntry, EntryAttrs } from './walk.js';
export { hashTar, writeLayer, type TarDigest, type WrittenLayer } from './hash.js';
export { detectCompression, decompress, gzip, peek, MAGIC_BYTES, type Compression } from './compression.js';
export { adaptiveGzip, compressBlock, BLOCK_SIZE } from './adaptive-gzip.js';
export { WHITEOUT_PREFIX, OPAQUE_MARKER, compareBytes, normalizeArchivePath } from './paths.js';
export { extractLayer, type ExtractOptions, type ExtractLimits, type ExtractResult } from './extract.js';
