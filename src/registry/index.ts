/**
 * The registry client's public API. Start with `new RegistryClient(opts)`; `client.repository(ref)`
 * gives per-repository operations; `transferImage` with sources/sinks moves images between registries,
 * the store and archives. Every failure is a DimgError whose message names registry and repository and
 * never contains a secret.
 */
export { RegistryClient, registrySource, registrySink, type RegistryClientOptions, type RepositoryRef } from './client.js';
export { RemoteRepository, type ManifestHead, type RepositoryTuning } from './repository.js';
export { transferImage, transferCancelled, type ImageSource, type ImageSink, type BlobLocation, type BlobOutcome, type TransferEvent, type TransferOptions, type TransferResult } from './transfer.js';
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
