/**
 * Authentication for one registry: learns the scheme from a `/v2/` ping, sends Basic credentials or
 * Bearer tokens (fetched from the challenge's realm with `service` and `scope`s, cached per realm,
 * service, scope set and credential until they expire), and on a 401 refreshes the token once
 * (adding the scope the challenge asks for) before giving up.
 *
 * Where credentials may go: the registry's Authorization is sent to its own origin only (an upload
 * Location or any other absolute URL elsewhere gets none, as Docker does). A token realm over plain
 * HTTP for a registry reached over HTTPS is a downgrade and refused; a password or identity token is
 * never sent to a plain-HTTP realm on another host; and before any long-lived credential goes out over
 * plain HTTP at all, `onCleartextCredential` is told (login warns with it).
 */
import { Readable } from 'node:stream';
import { DimgError } from '../errors.js';
import { parseChallenges, pickChallenge, type Challenge } from './challenge.js';
import type { Credential } from './credentials.js';
import { downgradeError, registryError, type ErrorSubject } from './errors.js';
import type { HttpRequest, HttpResponse, Transport } from './transport.js';

/** `repository:NAME:pull` / `repository:NAME:pull,push`. */
export function repositoryScope(path: string, actions: 'pull' | 'push' | 'pull,push'): string {
  return `repository:${path}:${actions === 'push' ? 'pull,push' : actions}`;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** A request plus the token scopes it needs. */
export interface AuthedRequest extends Omit<HttpRequest, 'url'> {
  /** Path and query below the registry base URL (`/v2/...`), or an absolute URL (upload Locations). */
  url: string;
  scopes: string[];
}

/** Options of a RegistryAuth. */
export interface AuthPolicy {
  /**
   * Called once per origin, before a password, identity token or registry token is first sent to it
   * over plain HTTP (the registry itself, or its token realm on the same host).
   */
  onCleartextCredential?: (origin: string) => void;
}

/**
 * The authenticated view of one registry. `send()` adds the right Authorization header and handles
 * 401 challenges; responses are returned whatever their status otherwise.
 */
export class RegistryAuth {
  private challenge: Challenge | null | undefined; // undefined: not pinged yet; null: no auth required
  private pinging: Promise<void> | undefined;
  private credential: Promise<Credential | undefined> | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<CachedToken>>();

  private base: string | undefined;
  private readonly warnedCleartext = new Set<string>();

  /**
   * @param domain the registry as named in references (for messages and credential lookup)
   * @param endpoint `scheme://apihost` the API is reached at, or for a registry whose scheme is decided
   *   before the first request (an insecure one, probed; see RegistryClient) its HTTPS URL and the
   *   deciding function, which is asked again only while it rejects
   * @param getCredential resolves the credential lazily (a helper runs only when auth is needed)
   */
  constructor(
    private readonly transport: Transport,
    readonly domain: string,
    private readonly endpoint: string | { https: string; decide: () => Promise<string> },
    private readonly getCredential: () => Promise<Credential | undefined>,
    private readonly policy: AuthPolicy = {},
  ) {
    if (typeof endpoint === 'string') this.base = endpoint;
  }

  /** `scheme://apihost` of the API: decided by the first request; before that, the HTTPS URL. */
  get baseUrl(): string {
    return this.base ?? (this.endpoint as { https: string }).https;
  }

  private async resolveBase(): Promise<string> {
    if (this.base === undefined) this.base = await (this.endpoint as { decide: () => Promise<string> }).decide();
    return this.base;
  }

  /** Scrubs every secret this registry's auth has handled (and header-shaped ones) from `text`. */
  redact(text: string): string {
    return this.transport.redact(text);
  }

  /** Sends `req` with authorization, answering one 401 with fresh credentials when the body allows a resend. */
  async send(req: AuthedRequest): Promise<HttpResponse> {
    await this.ping(req.subject);
    const base = new URL(await this.resolveBase());
    const url = new URL(req.url, base);
    if (url.origin !== base.origin) {
      // An absolute URL the registry handed out (an upload Location) on another origin: that host is
      // not the registry and gets none of its credentials, and HTTPS never falls back to plain HTTP.
      if (base.protocol === 'https:' && url.protocol !== 'https:') throw downgradeError(req.subject, 'handed out a location', url);
      return this.transport.send({ ...req, url, headers: { ...req.headers, authorization: undefined } });
    }
    const first = await this.transport.send({ ...req, url, headers: { ...req.headers, authorization: await this.authorization(req.scopes, req.subject, false, url) } });
    if (first.status !== 401) return first;
    const ch = pickChallenge(parseChallenges(first.headers['www-authenticate']));
    if (!ch) return first;
    if (req.body instanceof Readable) {
      // A streamed body cannot be resent: forget the token so the caller's fresh attempt gets a new one.
      this.challenge = ch;
      this.forget(req.scopes);
      return first;
    }
    first.discard();
    this.challenge = ch;
    const scopes = [...req.scopes];
    if (ch.params.scope && !scopes.includes(ch.params.scope)) scopes.unshift(ch.params.scope);
    const auth = await this.authorization(scopes, req.subject, true, url);
    if (auth === undefined) return first;
    return this.transport.send({ ...req, url, headers: { ...req.headers, authorization: auth } });
  }

  /**
   * Checks that the credential is accepted (what `docker login` does): Basic against `/v2/`, Bearer by
   * obtaining a token for the service with no scope. Throws REGISTRY_UNAUTHORIZED when rejected.
   */
  async verify(): Promise<void> {
    const subject: ErrorSubject = { registry: this.domain };
    await this.ping(subject);
    if (this.challenge === null) return;
    const url = new URL('/v2/', await this.resolveBase());
    const auth = await this.authorization([], subject, true, url);
    const r = await this.transport.send({ method: 'GET', url, headers: { authorization: auth }, subject });
    const body = r.status === 200 ? '' : await r.text();
    if (r.status === 200) {
      r.discard();
      return;
    }
    const err = registryError(r.status, body, subject);
    throw new DimgError(err.code, this.redact(err.message), err.hint);
  }

  /** Drops cached tokens whose scope set is `scopes` (any realm, service or credential). */
  private forget(scopes: string[]): void {
    const set = [...scopes].sort().join(' ');
    for (const k of this.tokens.keys()) if (k.split('|')[2] === set) this.tokens.delete(k);
  }

  private ping(subject: ErrorSubject): Promise<void> {
    if (this.challenge !== undefined) return Promise.resolve();
    this.pinging ??= (async () => {
      const r = await this.transport.send({ method: 'GET', url: new URL('/v2/', await this.resolveBase()), subject: { registry: subject.registry } });
      r.discard();
      this.challenge = r.status === 401 ? (pickChallenge(parseChallenges(r.headers['www-authenticate'])) ?? null) : null;
    })().finally(() => {
      this.pinging = undefined;
    });
    return this.pinging;
  }

  private cred(): Promise<Credential | undefined> {
    this.credential ??= this.getCredential().then((c) => {
      if (c) {
        const r = this.transport.redactor;
        if (c.username !== undefined && c.password !== undefined) r.addBasic(c.username, c.password);
        r.add(c.password, c.identityToken, c.registryToken);
      }
      return c;
    });
    return this.credential;
  }

  /** The Authorization for a request to `target` (on the registry's own origin), if any. */
  private async authorization(scopes: string[], subject: ErrorSubject, refresh: boolean, target: URL): Promise<string | undefined> {
    const ch = this.challenge;
    if (!ch) return undefined;
    const c = await this.cred();
    if (ch.scheme === 'basic') {
      if (!c?.username || c.password === undefined) return undefined;
      this.cleartextCheck(target);
      return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
    }
    if (ch.scheme !== 'bearer') return undefined;
    if (c?.registryToken) {
      this.cleartextCheck(target);
      return `Bearer ${c.registryToken}`;
    }
    const realm = ch.params.realm;
    if (!realm) throw new DimgError('REGISTRY_AUTH_INVALID', `registry ${this.domain}: Bearer challenge without a realm`, 'the registry\'s auth configuration is broken');
    const service = ch.params.service ?? '';
    const key = [realm, service, [...scopes].sort().join(' '), c?.username ?? (c?.identityToken ? '<identity-token>' : '<anonymous>')].join('|');
    const cached = this.tokens.get(key);
    if (cached && !refresh && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    if (refresh) this.tokens.delete(key);
    let p = this.inflight.get(key);
    if (!p) {
      p = this.fetchToken(realm, service, scopes, c, subject).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    const t = await p;
    this.tokens.set(key, t);
    return `Bearer ${t.token}`;
  }

  /**
   * The realm as a URL, refused when asking it would downgrade or leak: plain HTTP for a registry on
   * HTTPS (whoever sits in between could read the password or forge the token), or plain HTTP on
   * another host than the registry while a password or identity token would go with the request.
   */
  private checkRealm(realm: string, c: Credential | undefined): URL {
    let u: URL;
    try {
      u = new URL(realm);
    } catch {
      throw new DimgError('REGISTRY_AUTH_INVALID', `registry ${this.domain}: the Bearer realm "${realm}" is not a URL`, 'the registry\'s auth configuration is broken');
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') {
      throw new DimgError('REGISTRY_AUTH_INVALID', `registry ${this.domain}: the Bearer realm ${u.origin} is neither HTTPS nor HTTP`, 'the registry\'s auth configuration is broken');
    }
    if (u.protocol === 'https:') return u;
    const base = new URL(this.baseUrl);
    if (base.protocol === 'https:') {
      throw new DimgError(
        'REGISTRY_AUTH_DOWNGRADE',
        `registry ${this.domain} is reached over HTTPS, but its token service ${u.origin} is plain HTTP; dimg sends nothing there`,
        'the registry\'s token realm must be an https:// URL; ask its operator to fix the auth configuration',
      );
    }
    const secret = Boolean(c?.identityToken || (c?.username && c.password !== undefined));
    if (secret && u.hostname !== base.hostname) {
      throw new DimgError(
        'REGISTRY_AUTH_INSECURE_REALM',
        `registry ${this.domain}: its token service ${u.origin} is another host over plain HTTP; dimg does not send credentials there`,
        'serve the token service over HTTPS (or on the registry\'s own host); nothing was sent',
      );
    }
    if (secret) this.cleartextCheck(u);
    return u;
  }

  /** Tells the policy (once per origin) that a long-lived credential is about to go to `url` unencrypted. */
  private cleartextCheck(url: URL): void {
    if (url.protocol !== 'http:' || this.warnedCleartext.has(url.origin)) return;
    this.warnedCleartext.add(url.origin);
    this.policy.onCleartextCredential?.(url.origin);
  }

  private async fetchToken(realm: string, service: string, scopes: string[], c: Credential | undefined, subject: ErrorSubject): Promise<CachedToken> {
    const realmUrl = this.checkRealm(realm, c);
    const tokenSubject: ErrorSubject = { registry: subject.registry, repository: subject.repository, object: `token service ${realmUrl.host}` };
    let r: HttpResponse;
    if (c?.identityToken) {
      // An identity token is an OAuth2 refresh token: only the POST form can use it.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: c.identityToken, client_id: 'dimg', service, scope: scopes.join(' ') });
      r = await this.transport.send({ method: 'POST', url: realmUrl, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: Buffer.from(form.toString()), subject: tokenSubject, bufferBody: 1 << 20 });
    } else {
      const u = new URL(realmUrl);
      if (service) u.searchParams.set('service', service);
      for (const s of scopes) u.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      if (c?.username && c.password !== undefined) headers.authorization = `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
      r = await this.transport.send({ method: 'GET', url: u, headers, subject: tokenSubject, bufferBody: 1 << 20 });
    }
    if (r.status !== 200) {
      const body = r.data?.toString('utf8') ?? (await r.text());
      const raw = registryError(r.status, body, tokenSubject);
      const err = new DimgError(raw.code, this.redact(raw.message), raw.hint);
      if (r.status === 401 || r.status === 403) {
        throw new DimgError('REGISTRY_UNAUTHORIZED', err.message, c ? 'the stored credentials were rejected; log in again with `dimg login`' : 'this registry needs credentials; log in with `dimg login`');
      }
      throw err;
    }
    let v: { token?: string; access_token?: string; expires_in?: number; issued_at?: string; refresh_token?: string };
    try {
      v = JSON.parse(r.data!.toString('utf8')) as typeof v;
    } catch {
      throw new DimgError('REGISTRY_AUTH_INVALID', `registry ${this.domain}: the token service answered with something that is not JSON`, 'the registry\'s auth configuration is broken');
    }
    const token = v.token ?? v.access_token;
    if (!token) throw new DimgError('REGISTRY_AUTH_INVALID', `registry ${this.domain}: the token service answered without a token`, 'the registry\'s auth configuration is broken');
    this.transport.redactor.add(token, v.refresh_token);
    const issued = v.issued_at ? Date.parse(v.issued_at) : NaN;
    const start = Number.isNaN(issued) ? Date.now() : Math.min(issued, Date.now());
    // Tokens live at least 60 s (token spec); refresh a little early so a request never races expiry.
    const life = Math.max(60, v.expires_in ?? 60) * 1000;
    return { token, expiresAt: start + life - 5000 };
  }
}
