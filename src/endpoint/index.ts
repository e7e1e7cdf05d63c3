/**
 * Image endpoints: the ImageSource/ImageSink contract (types.ts), the one generic `transfer`
 * (transfer.ts) and the registry endpoint (registry.ts). The local store's endpoint is in
 * transfer/store-sink.ts, the OCI layout's in transfer/oci-layout.ts, the Docker archive's in
 * archive/endpoint.ts; all four pass the same conformance suite (test/integration/endpoint-conformance).
 */
export type { ImageSource, ImageSink, ManifestBytes, BlobLocation, BlobOutcome, TransferEvent } from './types.js';
export { transfer, transferCancelled, type TransferOptions, type TransferResult } from './transfer.js';
export { registrySource, registrySink, putManifestSettling, type RegistrySinkOptions } from './registry.js';
