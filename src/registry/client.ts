/**
 * RegistryClient: the entry point to every registry operation of one dimg run. It owns the transport
 * (sockets, retries, redaction), one RegistryAuth per registry (challenges, token cache, credentials),
 * the mirror configuration, and hands out RemoteRepository handles and image sources/sinks.
 */
import { DimgError, isDimgError, messageOf } from '../errors.js';
import type { Reference } from '../oci/reference.js';
import type { Descriptor } from '../oci/types.js';
import { RegistryAuth, type AuthPolicy } from './auth.js';
import { lookupCredential, type Credential, type CredentialOptions } from './credentials.js';
import { apiHost, normaliseRegistry, registryBaseUrl } from './hosts.js';
import { RemoteRepository, nextLink, type RepositoryTuning } from './repository.js';
import { registryError } from './errors.js';
import { registrySink, registrySource } from '../endpoint/registry.js';
import { transfer, type TransferOptions, type TransferResult } from '../endpoint/transfer.js';
import type { ImageSource } from '../endpoint/types.js';
import { probeTls } from './tls-probe.js';
import { Transport, type TransportOptions } from './transport.js';

// The registry's image endpoints live with the endpoint contract; re-exported for the client's users.
export { registrySink, registrySource };

/** Construction options of a RegistryClient. */
export interface RegistryClientOptions extends TransportOptions {
  /**
   * Registries (domain or host:port) marked insecure, as Docker's `insecure-registries`: HTTPS without
   * certificate verification, or plain HTTP when the registry does not speak TLS (probed once per
   * registry and client, loopback registries included).
   */
  insecure?: string[];
  /** Registries reached over HTTPS even on loopback (a local registry serving TLS). */
  tls?: string[];
  /** Where credentials come from (environment for config.json and helpers; explicit per-registry credentials). */
  credentials?: CredentialOptions;
  /** Pull-side mirrors: registry domain → mirror registry hosts tried first, in order (`docker.io` → [`mirror.local:5000`]). */
  mirrors?: Record<string, string[]>;
  /**
   * Called (once per origin) before a password, identity token or registry token is first sent over
   * plain HTTP, with the registry and the origin. `dimg login` warns with it.
   */
  onCleartextCredential?: (registry: string, origin: string) => void;
  /** Blob upload tuning (see RepositoryTuning). */
  monolithicMax?: number;
  chunkSize?: number;
  streamAttempts?: number;
}

/** A repository as the client addresses it: a reference's domain and path (tag/digest ignored). */
export type RepositoryRef = Pick<Reference, 'domain' | 'path'>;

/** The registry client. Create one per run, pass it where needed, `close()` it at the end. */
export class RegistryClient {
  readonly transport: Transport;
  private readonly auths = new Map<string, RegistryAuth>();
  private readonly insecure: Set<string>;
  private readonly tls: Set<string>;
  private readonly tuning: RepositoryTuning;
  /** API host → its decided base URL, for insecure registries (one probe per registry and run). */
  private readonly schemes = new Map<string, Promise<string>>();
  /** Mirrors that could not be reached: skipped for the rest of this client's life (one run). */
  private readonly downMirrors = new Set<string>();

  constructor(private readonly opts: RegistryClientOptions = {}) {
    this.insecure = new Set(opts.insecure ?? []);
    const unverified = [...this.insecure].map((r) => apiHost(normaliseRegistry(r)));
    this.transport = new Transport({ ...opts, unverifiedHosts: [...(opts.unverifiedHosts ?? []), ...unverified] });
    this.tls = new Set(opts.tls ?? []);
    this.tuning = { monolithicMax: opts.monolithicMax ?? 8 << 20, chunkSize: opts.chunkSize ?? 64 << 20, streamAttempts: opts.streamAttempts ?? 4 };
  }

  /** Frees pooled connections. */
  close(): void {
    this.transport.close();
  }

  /** The RegistryAuth of a registry domain (one per domain; credentials are looked up on first need). */
  authFor(domain: string, credential?: Credential): RegistryAuth {
    const key = credential ? `${domain}\0explicit` : domain;
    let a = this.auths.get(key);
    if (!a) {
      const getCred = credential ? async () => credential : () => lookupCredential(domain, this.opts.credentials);
      a = new RegistryAuth(this.transport, domain, this.endpoint(domain), getCred, this.policyFor(domain));
      this.auths.set(key, a);
    }
    return a;
  }

  /**
   * Where registry `domain`'s API is: a fixed URL (HTTPS; plain HTTP on loopback; HTTPS for `tls`
   * registries), or for an insecure registry HTTPS unless a TLS handshake shows the endpoint does not
   * speak TLS, then plain HTTP. The probe runs before the registry's first request and its answer is
   * kept for the client's lifetime; only an unreachable endpoint (no TCP connection, nothing learnt)
   * is probed again by the next request, and is tried over HTTPS meanwhile, except a registry without
   * a port, which Docker then tries over plain HTTP on port 80.
   */
  private endpoint(domain: string): string | { https: string; decide: () => Promise<string> } {
    const host = apiHost(domain);
    const insecure = this.insecure.has(domain) || this.insecure.has(host);
    if (!insecure || this.tls.has(domain) || this.tls.has(host)) return registryBaseUrl(domain, undefined, this.tls);
    const https = `https://${host}`;
    const decide = (): Promise<string> => {
      let p = this.schemes.get(host);
      if (!p) {
        p = probeTls(host).then((r) => {
          if (r === 'unreachable') {
            this.schemes.delete(host);
            return new URL(https).port === '' ? `http://${host}` : https;
          }
          this.opts.log?.(`registry ${domain}: ${r === 'tls' ? 'speaks TLS; HTTPS without certificate verification (insecure)' : 'does not speak TLS; plain HTTP (insecure)'}`);
          return r === 'tls' ? https : `http://${host}`;
        });
        this.schemes.set(host, p);
      }
      return p;
    };
    return { https, decide };
  }

  /** A handle on repository `ref.path` of registry `ref.domain`. */
  repository(ref: RepositoryRef): RemoteRepository {
    return new RemoteRepository(this.authFor(ref.domain), ref.domain, ref.path, this.tuning);
  }

  /**
   * Checks that `credential` is accepted by registry `server` (what `docker login` does before storing).
   * Throws REGISTRY_UNAUTHORIZED when it is not.
   */
  async verifyCredential(server: string, credential: Credential): Promise<void> {
    const domain = normaliseRegistry(server);
    const auth = new RegistryAuth(this.transport, domain, this.endpoint(domain), async () => credential, this.policyFor(domain));
    await auth.verify();
  }

  private policyFor(domain: string): AuthPolicy {
    const tell = this.opts.onCleartextCredential;
    return tell ? { onCleartextCredential: (origin) => tell(domain, origin) } : {};
  }

  /**
   * Every repository name of registry `domain` (GET /v2/_catalog, token scope `registry:catalog:*`),
   * following `Link: <…>; rel="next"` pages while present. `pageSize` asks for `n` per page. Registries
   * that do not offer the catalog answer REGISTRY_UNSUPPORTED / REGISTRY_NOT_FOUND / REGISTRY_DENIED.
   */
  async catalog(domain: string, pageSize?: number): Promise<string[]> {
    const auth = this.authFor(domain);
    const subject = { registry: domain, object: 'catalog' };
    const names: string[] = [];
    let next: string | undefined = `/v2/_catalog${pageSize ? `?n=${pageSize}` : ''}`;
    for (let page = 0; next !== undefined; page++) {
      if (page > 100_000) throw new DimgError('REGISTRY_PAGINATION_LOOP', `registry ${domain}: catalog pagination does not end`, 'the registry keeps sending Link headers');
      const r = await auth.send({ method: 'GET', url: next, subject, scopes: ['registry:catalog:*'], bufferBody: 64 << 20 });
      if (r.status !== 200) {
        const err = registryError(r.status, r.data?.toString('utf8') ?? '', subject);
        throw new DimgError(err.code, auth.redact(err.message), err.hint);
      }
      const v = JSON.parse(r.data!.toString('utf8')) as { repositories?: string[] | null };
      names.push(...(v.repositories ?? []));
      next = nextLink(r.header('link'), r.url);
    }
    return names;
  }

  /** The repositories to read `ref` from for a pull: its mirrors in order, then the origin. */
  pullRepositories(ref: RepositoryRef): RemoteRepository[] {
    const mirrors = this.opts.mirrors?.[ref.domain] ?? [];
    return [...mirrors.map((m) => this.repository({ domain: normaliseRegistry(m), path: ref.path })), this.repository(ref)];
  }

  /**
   * An ImageSource reading `ref` through its mirrors first: each operation tries the mirrors in order
   * and falls back to the origin; only the origin's failure is reported (mirror failures are logged).
   * A mirror that cannot be reached at all (after the transport's retries) is not asked again by this
   * client, so a mirror that is down costs one round of retries per run, not one per blob.
   */
  pullSource(ref: RepositoryRef): ImageSource {
    const repos = this.pullRepositories(ref);
    if (repos.length === 1) return registrySource(repos[0]!);
    const log = this.opts.log;
    const tryAll = async <T>(op: (r: RemoteRepository) => Promise<T>, signal: AbortSignal | undefined): Promise<T> => {
      for (const r of repos.slice(0, -1)) {
        if (this.downMirrors.has(r.domain)) continue;
        try {
          return await op(r);
        } catch (e) {
          // Cancelled (whatever the error says: a backoff sleep rejects with the signal's own reason):
          // the origin would be cancelled too; asking it anyway only delays stopping.
          if (signal?.aborted || isDimgError(e, 'ABORTED')) throw e;
          const down = isDimgError(e, 'REGISTRY_UNREACHABLE') || isDimgError(e, 'REGISTRY_CONNECTION') || isDimgError(e, 'REGISTRY_TLS');
          if (down) this.downMirrors.add(r.domain);
          log?.(this.transport.redact(`mirror ${r.domain} failed for ${ref.domain}/${ref.path}: ${messageOf(e)}; ${down ? 'not using it again in this run' : 'trying the next source'}`));
        }
      }
      return op(repos[repos.length - 1]!);
    };
    const origin = repos[repos.length - 1]!;
    return {
      name: origin.name,
      location: { domain: origin.domain, path: origin.path },
      manifest: (r, signal) => tryAll((repo) => repo.getManifest(r, signal), signal),
      blob: (d, signal) => tryAll((repo) => repo.getBlob(d.digest, d.size, signal), signal),
    };
  }

  /**
   * Copies image `src` (tag or digest) to `dst` registry→registry without the local store, keeping
   * digests. Blobs are mounted when both are on the same registry; an index is copied whole with
   * `allPlatforms`, else resolved to one platform. `dst` without tag or digest gets `src`'s tag.
   * `onBytes` reports bytes sent per blob while uploads run (for a live progress display).
   */
  async copyImage(src: Reference, dst: Reference, opts: TransferOptions & { onBytes?: (d: Descriptor, sent: number) => void } = {}): Promise<TransferResult> {
    const srcRef = src.digest ?? src.tag;
    if (!srcRef) throw new DimgError('REFERENCE_INVALID', `copy source ${src.domain}/${src.path} has neither tag nor digest`, 'name a tag or digest to copy');
    const dstRefs = dst.tag ? [dst.tag] : src.tag && !dst.digest ? [src.tag] : [];
    const sink = registrySink(this.repository(dst), opts.onBytes);
    const result = await transfer(this.pullSource(src), srcRef, sink, dstRefs, opts);
    if (dst.digest && dst.digest !== result.digest) {
      throw new DimgError('DIGEST_MISMATCH', `copy to ${dst.domain}/${dst.path}@${dst.digest}: the image copied has digest ${result.digest}`, 'name the destination by tag, or use the digest of the image being copied');
    }
    return result;
  }
}
