/**
 * Moving images between the local store and registries or other image formats: pull (registry →
 * store), push (store → registry, compressing each uncompressed layer once), the store as an image
 * sink/source, and OCI-layout directories as source/sink for `dimg image copy`.
 */
export { pullImage, type PullOptions, type PulledImage } from './pull.js';
export { pushImage, pushManifest, type PushOptions, type PushEvent } from './push.js';
export { storeSink, storeSource, recordLayers, isComplete, type StoreSinkOptions } from './store-sink.js';
export { layerForm, KEEP_GZIP_BELOW, type LayerFormEvent } from './layer-form.js';
export { adaptiveGzip, compressBlock, BLOCK_SIZE } from '../layer/adaptive-gzip.js';
export { PushState, type LayerChoice } from './push-state.js';
export { ociLayoutSource, ociLayoutSink } from './oci-layout.js';
export { copyBetween, type CopyOptions, type CopyResult } from './copy.js';
export { parseEndpoint, type Endpoint } from './endpoint.js';
