/**
 * The registry client's public API. Start with `new RegistryClient(opts)`; `client.repository(ref)`
 * gives per-repository operations; `registrySource`/`registrySink` are its image endpoints
 * (src/endpoint). Every failure is a DimgError whose message names registry and repository and
 * never contains a secret.
 */
export { RegistryClient, registrySource, registrySink, type RegistryClientOptions, type RepositoryRef } from './client.js';
export { RemoteRepository, type ManifestHead, type RepositoryTuning } from './repository.js';
// The endpoint contract and the generic transfer live in src/endpoint; re-exported for the client's users.
export { transfer, transferCancelled, type TransferOptions, type TransferResult } from '../endpoint/transfer.js';
export type { ImageSource, ImageSink, BlobLocation, BlobOutcome, TransferEvent } from '../endpoint/types.js';
export { type ManifestBytes, parseImageManifest, parseIndex, descriptorOf, MANIFEST_MAX_BYTES } from './manifest.js';
export { selectPlatform } from './select.js';
export { startStreamingUpload, type StreamingUpload, type UploadOptions, type UploadResult } from './upload.js';
export { Transport, DEFAULT_RETRY, type RetryPolicy, type TransportOptions } from './transport.js';
export { RegistryAuth, repositoryScope } from './auth.js';
export { parseChallenges, type Challenge } from './challenge.js';
export {
  lookupCredential,
  saveCredential,
  removeCredential,
  readDockerConfig,
  dockerConfigPath,
  dockerConfigDir,
  helperGet,
  type Credential,
  type CredentialOptions,
  type SavedTo,
} from './credentials.js';
export { normaliseRegistry, apiHost, credentialKey, isLoopback, registryBaseUrl, DOCKER_HUB_CONFIG_KEY } from './hosts.js';
export { registryError, type ErrorSubject } from './errors.js';
export { Redactor, redactPatterns } from './redact.js';
