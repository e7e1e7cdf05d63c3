/** Image archives: `docker save`-style tar files in and out of the store. */
export { resolveSaveSet, writeArchive, type SaveItem } from './save.js';
export { loadArchive, type LoadedImage } from './load.js';
export { readArchive, ArchiveFiles, type ArchiveFile } from './read.js';
export { dockerArchiveSource, dockerArchiveSink, type DockerArchiveSinkOptions } from './endpoint.js';
