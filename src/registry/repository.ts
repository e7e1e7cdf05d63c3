/**
 * One repository on one registry: manifests (get/head/put/delete by tag or digest), blobs
 * (exists/get/upload/mount) and tag listing, over an authenticated RegistryAuth.
 */
import type { Readable } from 'node:stream';
import { DimgError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { ACCEPTED_MANIFEST_TYPES } from '../oci/media-types.js';
import type { RegistryAuth } from './auth.js';
import { repositoryScope } from './auth.js';
import { openVerifiedBlob } from './blob-download.js';
import { registryError, type ErrorSubject } from './errors.js';
import { MANIFEST_MAX_BYTES, manifestMediaType, verifyManifest, type ManifestBytes } from './manifest.js';
import { sleep, type HttpResponse } from './transport.js';
import { uploadBlob, type UploadOptions, type UploadResult } from './upload.js';

/** What a HEAD of a manifest tells. */
export interface ManifestHead {
  digest: Digest;
  mediaType: string;
  size: number;
}

/** Tuning shared by the repositories of one client. */
export interface RepositoryTuning {
  /** Blobs up to this size are uploaded in one PUT (default 8 MiB). */
  monolithicMax: number;
  /** Chunk size of PATCH uploads (default 64 MiB). */
  chunkSize: number;
  /** Attempts of one whole streamed upload or download (a fresh source each time). */
  streamAttempts: number;
}

/** A repository handle. Cheap to create; all state (tokens, sockets) lives in the client. */
export class RemoteRepository {
  constructor(
    readonly auth: RegistryAuth,
    /** Registry domain as in references (`127.0.0.1:5000`, `docker.io`). */
    readonly domain: string,
    /** Repository path (`library/busybox`). */
    readonly path: string,
    private readonly tuning: RepositoryTuning,
  ) {}

  /** `domain/path`. */
  get name(): string {
    return `${this.domain}/${this.path}`;
  }

  /** The error subject for an object of this repository. */
  subject(object?: string): ErrorSubject {
    return { registry: this.domain, repository: this.path, object };
  }

  /** Sends a request to `/v2/<path>/<rest>` (or an absolute URL) with the scopes of `access`. */
  async request(
    method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    rest: string,
    o: { access: 'pull' | 'push'; object: string; headers?: Record<string, string | undefined>; body?: Buffer | Readable; bufferBody?: number; extraScopes?: string[]; noRetry?: boolean; signal?: AbortSignal },
  ): Promise<HttpResponse> {
    const url = /^https?:\/\//.test(rest) ? rest : `/v2/${this.path}/${rest}`;
    return this.auth.send({
      method,
      url,
      headers: o.headers,
      body: o.body,
      bufferBody: o.bufferBody,
      noRetry: o.noRetry,
      signal: o.signal,
      subject: this.subject(o.object),
      scopes: [repositoryScope(this.path, o.access), ...(o.extraScopes ?? [])],
    });
  }

  /** Throws the registry's error for `r` (reading its body) unless its status is in `ok`. */
  async expect(r: HttpResponse, ok: number[], object: string): Promise<void> {
    if (ok.includes(r.status)) return;
    const body = r.data?.toString('utf8') ?? (await r.text());
    const err = registryError(r.status, body, this.subject(object));
    // The registry's own text could echo anything it was sent: scrub it with every known secret.
    throw new DimgError(err.code, this.auth.redact(err.message), err.hint);
  }

  /**
   * Fetches a manifest or index by tag or digest with its exact bytes. Accepts OCI and Docker manifest
   * and index types; verifies the bytes against the digest asked for and `Docker-Content-Digest`.
   * Throws REGISTRY_MANIFEST_UNKNOWN (or REGISTRY_NOT_FOUND) when absent; ABORTED when `signal` fires.
   */
  async getManifest(ref: string, signal?: AbortSignal): Promise<ManifestBytes> {
    const object = `manifest ${ref}`;
    const what = `${this.name}@${ref}`;
    for (let attempt = 1; ; attempt++) {
      const r = await this.request('GET', `manifests/${ref}`, { access: 'pull', object, headers: { accept: ACCEPTED_MANIFEST_TYPES.join(', ') }, bufferBody: MANIFEST_MAX_BYTES, signal });
      await this.expect(r, [200], object);
      const bytes = r.data!;
      let digest: Digest;
      try {
        digest = verifyManifest(bytes, isDigest(ref) ? ref : undefined, r.header('docker-content-digest'), what);
      } catch (err) {
        // A body cut short without Content-Length (chunked, ended cleanly) arrives "complete" and
        // only the digest check notices; fetch it again a few times before calling it altered.
        if (attempt >= this.tuning.streamAttempts) throw err;
        await sleep(Math.min(2000, 250 * 2 ** (attempt - 1)), signal);
        continue;
      }
      return { bytes, mediaType: manifestMediaType(r.header('content-type'), bytes, what), digest };
    }
  }

  /**
   * HEADs a manifest: its digest, media type and size, or undefined when the registry has no such
   * tag/digest (404). No body is transferred (and Docker Hub does not count it as a pull).
   */
  async headManifest(ref: string): Promise<ManifestHead | undefined> {
    const object = `manifest ${ref}`;
    const r = await this.request('HEAD', `manifests/${ref}`, { access: 'pull', object, headers: { accept: ACCEPTED_MANIFEST_TYPES.join(', ') } });
    r.discard();
    if (r.status === 404) return undefined;
    await this.expect(r, [200], object);
    const stated = r.header('docker-content-digest');
    const size = Number(r.header('content-length') ?? NaN);
    const mediaType = r.header('content-type')?.split(';')[0]?.trim() ?? '';
    if (stated && isDigest(stated) && Number.isFinite(size)) return { digest: stated, mediaType, size };
    // Some registries omit the digest on HEAD; a GET tells for sure.
    const m = await this.getManifest(ref);
    return { digest: m.digest, mediaType: m.mediaType, size: m.bytes.length };
  }

  /**
   * Uploads manifest bytes under a tag or their digest with `Content-Type: mediaType` (registry 2.8
   * picks its parser from it). Every blob it references must already be in the repository.
   * Returns the digest the registry stored, checked against the bytes' own digest.
   */
  async putManifest(ref: string, bytes: Buffer, mediaType: string): Promise<Digest> {
    const object = `manifest ${ref}`;
    const r = await this.request('PUT', `manifests/${ref}`, { access: 'push', object, headers: { 'content-type': mediaType }, body: bytes, bufferBody: 1 << 20 });
    await this.expect(r, [201, 200, 202], object);
    return verifyManifest(bytes, isDigest(ref) ? ref : undefined, r.header('docker-content-digest'), `${this.name}@${ref}`);
  }

  /**
   * Deletes a manifest by digest (a tag is resolved with HEAD first, since 2.8 deletes by digest only;
   * 2.8 then drops every tag pointing at it). Throws REGISTRY_UNSUPPORTED when deletes are disabled.
   */
  async deleteManifest(ref: string): Promise<Digest> {
    let digest: Digest;
    if (isDigest(ref)) digest = ref;
    else {
      const h = await this.headManifest(ref);
      if (!h) throw registryError(404, '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}', this.subject(`manifest ${ref}`));
      digest = h.digest;
    }
    const object = `manifest ${digest}`;
    const r = await this.request('DELETE', `manifests/${digest}`, { access: 'push', object, bufferBody: 1 << 20 });
    await this.expect(r, [202, 200, 204], object);
    return digest;
  }

  /** True when the repository has the blob (HEAD 200); false on 404. */
  async blobExists(digest: Digest): Promise<boolean> {
    const object = `blob ${digest}`;
    const r = await this.request('HEAD', `blobs/${digest}`, { access: 'pull', object });
    r.discard();
    if (r.status === 404) return false;
    await this.expect(r, [200], object);
    return true;
  }

  /**
   * Opens a blob as a stream that fails with DIGEST_MISMATCH / SIZE_MISMATCH unless exactly the bytes
   * of `digest` (and `size`, when given) arrive. A connection lost mid-way is resumed with a Range
   * request. Rejects with REGISTRY_BLOB_UNKNOWN when absent. When `signal` fires, the request is
   * aborted and the stream fails with ABORTED.
   */
  getBlob(digest: Digest, size?: number, signal?: AbortSignal): Promise<Readable> {
    return openVerifiedBlob(this, digest, size, this.tuning.streamAttempts, signal);
  }

  /**
   * Uploads a blob unless the repository already has it (HEAD first). When `opts.mountFrom` names
   * repositories of the same registry that hold it, a cross-repository mount is tried first. Small
   * blobs go in one PUT, large ones in PATCH chunks streamed from `open()` with memory independent of
   * the size. `open` is called again for each fresh attempt after a failure. The source is verified
   * against `digest` and `size` while it is sent.
   */
  uploadBlob(digest: Digest, size: number, open: () => Readable | Promise<Readable>, opts: UploadOptions = {}): Promise<UploadResult> {
    return uploadBlob(this, digest, size, open, { monolithicMax: this.tuning.monolithicMax, chunkSize: this.tuning.chunkSize, attempts: this.tuning.streamAttempts, ...opts });
  }

  /**
   * Lists the repository's tags, following `Link: <…>; rel="next"` pages while present (registry 2.8
   * sends none and returns everything at once). `pageSize` asks for `n` per page.
   */
  async listTags(pageSize?: number): Promise<string[]> {
    const tags: string[] = [];
    let next: string | undefined = `tags/list${pageSize ? `?n=${pageSize}` : ''}`;
    for (let page = 0; next !== undefined; page++) {
      if (page > 10_000) throw new DimgError('REGISTRY_PAGINATION_LOOP', `registry ${this.domain}, repository ${this.path}: tag list pagination does not end`, 'the registry keeps sending Link headers');
      const object = 'tag list';
      const r = await this.request('GET', next, { access: 'pull', object, bufferBody: 16 << 20 });
      await this.expect(r, [200], object);
      const v = JSON.parse(r.data!.toString('utf8')) as { tags?: string[] | null };
      tags.push(...(v.tags ?? []));
      next = nextLink(r.header('link'), r.url);
    }
    return tags;
  }
}

/** The `rel="next"` target of a Link header, absolute, or undefined. */
export function nextLink(link: string | undefined, base: URL): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(',')) {
    const m = /<([^>]*)>\s*;(.*)/.exec(part.trim());
    if (m && /rel="?next"?/.test(m[2]!)) return new URL(m[1]!, base).toString();
  }
  return undefined;
}
