/**
 * Moving images between the local store and registries or other image formats, all through the one
 * `transfer` of src/endpoint: pull (registry → store), push (store → registry, compressing each
 * uncompressed layer once), the store and OCI-layout directories as image endpoints, and
 * `dimg image copy` between any two endpoints.
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
