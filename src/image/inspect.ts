/**
 * `docker image inspect`-shaped records for local images, so scripts written against Docker's
 * output (`.Id`, `.RepoTags`, `.Config.Env`, `.RootFS.Layers`…) work unchanged.
 */
import { parseReference } from '../oci/reference.js';
import type { ContainerConfig, Descriptor } from '../oci/types.js';
import type { ImageEntry } from '../store/refs.js';
import { imageSize, type LocalImage } from './local-image.js';

/** The record `dimg image inspect` prints (field names and casing as Docker's). */
export interface InspectRecord {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Parent: string;
  Comment: string;
  Created: string;
  DockerVersion: string;
  Author: string;
  Config: Record<string, unknown>;
  Architecture: string;
  Variant?: string;
  Os: string;
  Size: number;
  RootFS: { Type: string; Layers: string[] };
  Metadata: { LastTagTime: string };
  Descriptor: Descriptor;
}

/**
 * Builds the inspect record of `image`. `entries` is the whole store index: every name whose entry
 * holds the same image ID appears in RepoTags (familiar form, as Docker prints them) and, with the
 * manifest digest, in RepoDigests (as Docker's containerd store does).
 */
export function inspectRecord(image: LocalImage, entries: readonly { entry: ImageEntry; image: LocalImage }[]): InspectRecord {
  const tags: string[] = [];
  const digests: string[] = [];
  for (const { entry, image: other } of entries) {
    if (other.id !== image.id || !entry.name) continue;
    const ref = parseReference(entry.name);
    // A name pulled by digest has no tag, and so no RepoTags entry (as in Docker).
    const tag = ref.tag === undefined ? undefined : ref.repositoryOnly().withTag(ref.tag).familiar();
    if (tag !== undefined && !tags.includes(tag)) tags.push(tag);
    const dig = ref.repositoryOnly().withDigest(entry.descriptor.digest).familiar();
    if (!digests.includes(dig)) digests.push(dig);
  }
  const cfg = image.config;
  const record: InspectRecord = {
    Id: image.id,
    RepoTags: tags,
    RepoDigests: digests,
    Parent: '',
    Comment: typeof cfg.comment === 'string' ? cfg.comment : '',
    Created: cfg.created ?? '',
    DockerVersion: typeof cfg.docker_version === 'string' ? cfg.docker_version : '',
    Author: cfg.author ?? '',
    Config: dockerConfig(cfg.config ?? {}),
    Architecture: cfg.architecture,
    Os: cfg.os,
    Size: imageSize(image),
    RootFS: { Type: cfg.rootfs?.type ?? 'layers', Layers: [...(cfg.rootfs?.diff_ids ?? [])] },
    Metadata: { LastTagTime: '0001-01-01T00:00:00Z' },
    Descriptor: { mediaType: image.descriptor.mediaType, digest: image.descriptor.digest, size: image.descriptor.size },
  };
  if (cfg.variant) record.Variant = cfg.variant;
  return reorder(record);
}

/** The container config with Docker's always-present keys filled (null / "" like `docker inspect`). */
function dockerConfig(c: ContainerConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    User: c.User ?? '',
    Env: c.Env ?? null,
    Cmd: c.Cmd ?? null,
    WorkingDir: c.WorkingDir ?? '',
    Entrypoint: c.Entrypoint ?? null,
    OnBuild: c.OnBuild ?? null,
    Labels: c.Labels ?? null,
  };
  if (c.ExposedPorts) out.ExposedPorts = c.ExposedPorts;
  if (c.Volumes) out.Volumes = c.Volumes;
  if (c.StopSignal) out.StopSignal = c.StopSignal;
  if (c.Healthcheck) out.Healthcheck = c.Healthcheck;
  if (c.Shell) out.Shell = c.Shell;
  if (c.ArgsEscaped) out.ArgsEscaped = c.ArgsEscaped;
  return out;
}

/** Puts Variant right after Architecture, as Docker orders the keys. */
function reorder(r: InspectRecord): InspectRecord {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) {
    if (k === 'Variant') continue;
    out[k] = v;
    if (k === 'Architecture' && r.Variant) out.Variant = r.Variant;
  }
  return out as unknown as InspectRecord;
}
