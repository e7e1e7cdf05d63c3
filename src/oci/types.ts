/**
 * The OCI data model: descriptors, manifests, indexes and image configs, as plain JSON types.
 * Field names follow the OCI image spec exactly so values round-trip through JSON unchanged.
 */
import type { Digest } from './digest.js';

/** A platform as used in index entries and configs. */
export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

/** A content descriptor: what, where (digest) and how big. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
  data?: string;
}

/** An image manifest (OCI or Docker schema2; the shapes are the same). */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** An image index or Docker manifest list. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** The health check Docker keeps in the config (reserved in OCI, but read by every runtime). */
export interface HealthConfig {
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

/** The runtime part of an image config. */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  ArgsEscaped?: boolean;
  Healthcheck?: HealthConfig;
  Shell?: string[];
  OnBuild?: string[] | null;
}

/** One entry of an image's history. */
export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** An image config (`application/vnd.oci.image.config.v1+json`). */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
  [extra: string]: unknown;
}

/** The annotation holding a tag in an OCI layout's index.json. */
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
/** The annotation containerd and Docker 25+ use for the full image name in index.json. */
export const ANNOTATION_IMAGE_NAME = 'io.containerd.image.name';
/** Manifest annotation: the input digest of the whole image (base digest + all step keys). */
export const ANNOTATION_INPUT_DIGEST = 'dev.dimg.input-digest';
/** Manifest annotation: the digest the image was built on (base manifest digest or the parent's input digest). */
export const ANNOTATION_BASE_DIGEST = 'dev.dimg.base-digest';
/** Manifest annotation: the spec `project` that owns the image in registries. */
export const ANNOTATION_PROJECT = 'dev.dimg.project';
/** OCI standard annotation for the creation time. */
export const ANNOTATION_CREATED = 'org.opencontainers.image.created';
