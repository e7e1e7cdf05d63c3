/**
 * HTTP(S) transport for registries: keep-alive agents with a bounded number of sockets per registry,
 * certificate verification (with extra CAs), retries with exponential backoff and jitter on connection
 * errors, 5xx and 429 (honouring Retry-After within a total budget), redirects that never carry
 * Authorization to another host nor go from HTTPS to plain HTTP, and secret redaction of every
 * message it produces.
 *
 * Auth is not done here (see auth.ts): this layer sends exactly the headers it is given.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import { Readable } from 'node:stream';
import { DimgError, messageOf } from '../errors.js';
import { describeSubject, downgradeError, type ErrorSubject } from './errors.js';
import { Redactor } from './redact.js';

/** How hard to retry. All delays in milliseconds. */
export interface RetryPolicy {
  /** Total tries of one request, the first included. */
  attempts: number;
  /** First backoff delay; doubled each retry, with jitter. */
  baseDelayMs: number;
  /** Largest single backoff delay. */
  maxDelayMs: number;
  /** Most time spent waiting across all retries of one request (Retry-After included). */
  maxTotalWaitMs: number;
}

/** The default: 5 tries, 250 ms doubling to 8 s, at most 60 s of waiting in all. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 250, maxDelayMs: 8000, maxTotalWaitMs: 60_000 };

/** Construction options of a Transport. */
export interface TransportOptions {
  /** Sockets per registry origin (default 6). */
  maxSockets?: number;
  /** Extra PEM CA certificates trusted besides the system's (`--ca-file`). */
  ca?: string | Buffer | (string | Buffer)[];
  /**
   * API hosts (`host[:port]`) whose HTTPS certificates are not verified: the registries marked
   * insecure, as Docker's `insecure-registries`. Only these exact hosts; a redirect elsewhere (a blob
   * store) is verified as usual.
   */
  unverifiedHosts?: string[];
  retry?: Partial<RetryPolicy>;
  /** Socket inactivity after which a request counts as stalled and fails (default 60 s). */
  idleTimeoutMs?: number;
  /** Shared redactor; secrets registered on it are scrubbed from every message. */
  redactor?: Redactor;
  /** Receives one redacted line per retry and redirect, for `--debug`-style logging. */
  log?: (line: string) => void;
  /** Sent as User-Agent. */
  userAgent?: string;
}

/** One request. A Buffer body is replayable (retried freely); a Readable body is sent once. */
export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string | URL;
  headers?: Record<string, string | undefined>;
  body?: Buffer | Readable;
  /** What the request is about, for error messages. */
  subject: ErrorSubject;
  /** Follow 3xx answers (default: for GET and HEAD). */
  followRedirects?: boolean;
  /** Read the whole body (at most this many bytes) inside the retry loop into `data`. */
  bufferBody?: number;
  /** Turn off retries for this request (the caller retries at a higher level). */
  noRetry?: boolean;
  signal?: AbortSignal;
}

/** A response. Unless the request buffered it, `body` must be consumed or `discard()`ed. */
export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The URL that answered (after redirects). */
  url: URL;
  body: IncomingMessage;
  /** The whole body when the request asked for `bufferBody`. */
  data?: Buffer;
  /** One header's value (first if repeated), or undefined. */
  header(name: string): string | undefined;
  /** Reads the body as text (bounded); for error bodies and small JSON. */
  text(limit?: number): Promise<string>;
  /** Throws the body away so the socket returns to the pool. */
  discard(): void;
}

const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;
const RETRYABLE_ERRORS = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ECONNABORTED', 'UND_ERR_SOCKET', 'ERR_STREAM_PREMATURE_CLOSE', 'DIMG_STALLED', 'DIMG_TRUNCATED']);
const TLS_ERROR_RE = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME/;

/** The HTTP client shared by every registry operation of one dimg run. Call `close()` at the end. */
export class Transport {
  readonly redactor: Redactor;
  private readonly agents = new Map<string, http.Agent>();
  private readonly retry: RetryPolicy;
  private readonly idleTimeoutMs: number;
  private readonly unverified: Set<string>;

  constructor(private readonly opts: TransportOptions = {}) {
    this.redactor = opts.redactor ?? new Redactor();
    this.unverified = new Set(opts.unverifiedHosts ?? []);
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  }

  /** Frees every pooled socket. */
  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }

  /**
   * Sends a request, retrying connection errors, 5xx and 429 with backoff while the body is replayable,
   * and following redirects when asked. Resolves with the final response whatever its status (the
   * caller decides what a status means); rejects with a redacted DimgError (REGISTRY_UNREACHABLE,
   * REGISTRY_TLS, REGISTRY_CONNECTION) when no response could be had.
   */
  async send(req: HttpRequest): Promise<HttpResponse> {
    const replayable = !(req.body instanceof Readable);
    const canRetry = replayable && !req.noRetry;
    let waited = 0;
    for (let attempt = 1; ; attempt++) {
      let resp: HttpResponse;
      try {
        resp = await this.sendFollowing(req);
        if (req.bufferBody !== undefined && req.method !== 'HEAD' && !RETRY_STATUS.has(resp.status)) {
          resp.data = await readAll(resp.body, req.bufferBody, this.idleTimeoutMs);
        }
      } catch (err) {
        const code = errCode(err);
        const retryable = RETRYABLE_ERRORS.has(code);
        if (!canRetry || !retryable || attempt >= this.retry.attempts) throw this.connectionError(req, err, attempt);
        const delay = this.backoff(attempt);
        if (waited + delay > this.retry.maxTotalWaitMs) throw this.connectionError(req, err, attempt);
        this.log(`retrying ${req.method} ${urlText(req.url)} after ${code} (attempt ${attempt + 1}/${this.retry.attempts}, waiting ${delay} ms)`);
        await sleep(delay, req.signal);
        waited += delay;
        continue;
      }
      if (!RETRY_STATUS.has(resp.status) || !canRetry || attempt >= this.retry.attempts) return resp;
      const retryAfter = parseRetryAfter(resp.header('retry-after'));
      const delay = retryAfter !== undefined ? retryAfter : this.backoff(attempt);
      if (waited + delay > this.retry.maxTotalWaitMs) return resp;
      resp.discard();
      this.log(`retrying ${req.method} ${urlText(req.url)} after HTTP ${resp.status} (attempt ${attempt + 1}/${this.retry.attempts}, waiting ${delay} ms)`);
      await sleep(delay, req.signal);
      waited += delay;
    }
  }

  private async sendFollowing(req: HttpRequest): Promise<HttpResponse> {
    const follow = req.followRedirects ?? (req.method === 'GET' || req.method === 'HEAD');
    let url = new URL(req.url);
    const origin = url.origin;
    let headers = { ...req.headers };
    let method = req.method;
    for (let hop = 0; ; hop++) {
      const resp = await this.once(method, url, headers, hop === 0 ? req.body : undefined, req.signal);
      const location = resp.header('location');
      if (!follow || !REDIRECT_STATUS.has(resp.status) || !location) return resp;
      resp.discard();
      if (hop >= MAX_REDIRECTS) {
        throw new DimgError('REGISTRY_REDIRECT_LOOP', `${describeSubject(req.subject)}: more than ${MAX_REDIRECTS} redirects`, 'the registry or a proxy in front of it is misconfigured');
      }
      const next = new URL(location, url);
      // A redirect can hand the request to a storage host, never from HTTPS down to plain HTTP: the
      // bytes (and anything signed in the URL) would then travel readable and forgeable.
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new DimgError('REGISTRY_REDIRECT_INVALID', `${describeSubject(req.subject)}: redirected to a ${next.protocol} URL, which is not HTTP`, 'the registry or a proxy in front of it is misconfigured');
      }
      if (url.protocol === 'https:' && next.protocol !== 'https:') throw downgradeError(req.subject, 'redirected the request', next);
      if (next.origin !== origin && headers.authorization !== undefined) {
        // Credentials are for the registry only, never for the storage backend it redirects to.
        headers = { ...headers, authorization: undefined };
      }
      if (resp.status === 303) method = 'GET';
      this.log(`following redirect ${resp.status} to ${next.origin}`);
      url = next;
    }
  }

  private once(method: string, url: URL, headers: Record<string, string | undefined>, body: Buffer | Readable | undefined, signal?: AbortSignal): Promise<HttpResponse> {
    const isHttps = url.protocol === 'https:';
    const lib = isHttps ? https : http;
    const outHeaders: Record<string, string> = { 'user-agent': this.opts.userAgent ?? 'dimg/0.1' };
    for (const [k, v] of Object.entries(headers)) if (v !== undefined) outHeaders[k.toLowerCase()] = v;
    if (Buffer.isBuffer(body)) outHeaders['content-length'] = String(body.length);
    else if (body === undefined && (method === 'PUT' || method === 'POST' || method === 'PATCH')) outHeaders['content-length'] = '0';
    return new Promise<HttpResponse>((resolve, reject) => {
      const r = lib.request(url, { method, headers: outHeaders, agent: this.agentFor(url), signal });
      r.setTimeout(this.idleTimeoutMs, () => r.destroy(Object.assign(new Error(`no data for ${this.idleTimeoutMs} ms`), { code: 'DIMG_STALLED' })));
      r.on('error', reject);
      r.on('response', (res) => resolve(wrapResponse(res, url)));
      if (body === undefined) r.end();
      else if (Buffer.isBuffer(body)) r.end(body);
      else if (body.destroyed) {
        // Piping a destroyed stream ends nothing: the request would wait for the idle timeout.
        r.destroy(Object.assign(new Error('the request body was abandoned before it was sent'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
      } else {
        body.on('error', (e) => r.destroy(e));
        body.pipe(r);
      }
    });
  }

  private agentFor(url: URL): http.Agent {
    const key = url.origin;
    let a = this.agents.get(key);
    if (!a) {
      const common = { keepAlive: true, maxSockets: this.opts.maxSockets ?? 6, maxFreeSockets: this.opts.maxSockets ?? 6 };
      if (url.protocol === 'https:') {
        const extra = this.opts.ca === undefined ? [] : Array.isArray(this.opts.ca) ? this.opts.ca : [this.opts.ca];
        a = new https.Agent({
          ...common,
          ca: extra.length > 0 ? [...rootCertificates, ...extra.map(String)] : undefined,
          rejectUnauthorized: !this.isUnverified(url),
        });
      } else {
        a = new http.Agent(common);
      }
      this.agents.set(key, a);
    }
    return a;
  }

  /** True when `url`'s host is one whose certificate is not checked (`insecure`); port 443 may be implicit. */
  private isUnverified(url: URL): boolean {
    return this.unverified.has(url.host) || this.unverified.has(`${url.hostname}:${url.port || '443'}`);
  }

  private backoff(attempt: number): number {
    const exp = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
    // Full jitter in the upper half: spreads retries of parallel transfers without collapsing to zero.
    return Math.round(exp / 2 + Math.random() * (exp / 2));
  }

  private connectionError(req: HttpRequest, err: unknown, attempts: number): DimgError {
    if (err instanceof DimgError) return new DimgError(err.code, this.redact(err.message), err.hint);
    const code = errCode(err);
    const what = describeSubject(req.subject);
    if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG/.test(code) || (code === 'EPROTO' && /wrong version number|packet length too long/i.test(messageOf(err)))) {
      // The HTTPS request was answered by something that does not speak TLS, typically plain HTTP.
      return new DimgError('REGISTRY_TLS', this.redact(`${what}: the registry does not speak TLS (an HTTPS request got a non-TLS answer)`), 'a plain-HTTP registry must be marked insecure: `insecure: true` in the spec, or --insecure');
    }
    if (TLS_ERROR_RE.test(code)) {
      return new DimgError('REGISTRY_TLS', this.redact(`${what}: TLS verification failed (${code}): ${messageOf(err)}`), 'trust the registry\'s CA with --ca-file, or for a test registry mark it insecure with --insecure');
    }
    if (code === 'ABORT_ERR') return new DimgError('ABORTED', `${what}: request cancelled`, '');
    if (code === 'DIMG_TOO_LARGE') {
      // Not a transport failure: the same answer would come again, so it is neither retried nor called one.
      const limit = (err as { limit: number }).limit;
      return new DimgError('REGISTRY_RESPONSE_TOO_LARGE', this.redact(`${what}: too large: the registry sent more than ${sizeText(limit)}, the most dimg accepts for it`), 'check the reference: this is not what such an object looks like (a manifest or index is at most a few MiB)');
    }
    const tries = attempts > 1 ? ` after ${attempts} attempts` : '';
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
      return new DimgError('REGISTRY_UNREACHABLE', this.redact(`${what}: cannot connect (${code})${tries}`), 'check the registry address and that it is running; a plain-HTTP registry must be marked --insecure');
    }
    return new DimgError('REGISTRY_CONNECTION', this.redact(`${what}: ${req.method} failed${tries}: ${code ? `${code}: ` : ''}${messageOf(err)}`), 'the connection to the registry failed; retry, and check any proxy in between');
  }

  /** Redacts `text` with this transport's redactor (every secret the auth layer registered). */
  redact(text: string): string {
    return this.redactor.redact(text);
  }

  private log(line: string): void {
    this.opts.log?.(this.redact(line));
  }
}

function wrapResponse(res: IncomingMessage, url: URL): HttpResponse {
  return {
    status: res.statusCode ?? 0,
    headers: res.headers,
    url,
    body: res,
    header(name: string) {
      const v = res.headers[name.toLowerCase()];
      return Array.isArray(v) ? v[0] : v;
    },
    async text(limit = 64 * 1024) {
      try {
        return (await readAll(res, limit, 30_000, true)).toString('utf8');
      } catch {
        return '';
      }
    },
    discard() {
      res.resume();
      res.on('error', () => {});
    },
  };
}

/**
 * Reads a response body fully. Fails with DIMG_TRUNCATED when the connection ends before
 * Content-Length bytes arrived. Beyond `limit` bytes it fails with DIMG_TOO_LARGE (at once when
 * Content-Length says so, before reading), or truncates when `truncate`. Settles once: destroying
 * the response makes it report an abort, which must not overtake the real reason.
 */
function readAll(res: IncomingMessage, limit: number, _idle: number, truncate = false): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err: Error | undefined, data?: Buffer) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(data!);
    };
    const tooLarge = () => {
      done(Object.assign(new Error(`the response is larger than ${sizeText(limit)}`), { code: 'DIMG_TOO_LARGE', limit }));
      res.destroy();
    };
    const parts: Buffer[] = [];
    let n = 0;
    const expected = res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : undefined;
    if (expected !== undefined && expected > limit && !truncate) {
      tooLarge();
      return;
    }
    res.on('data', (b: Buffer) => {
      if (settled) return;
      if (n + b.length > limit) {
        if (!truncate) {
          tooLarge();
          return;
        }
        parts.push(b.subarray(0, limit - n));
        n = limit;
        done(undefined, Buffer.concat(parts));
        res.destroy();
        return;
      }
      parts.push(b);
      n += b.length;
    });
    res.on('aborted', () => done(Object.assign(new Error('connection closed mid-body'), { code: 'DIMG_TRUNCATED' })));
    res.on('error', (e) => done(errCode(e) ? e : Object.assign(e, { code: 'DIMG_TRUNCATED' })));
    res.on('end', () => {
      if (expected !== undefined && n < expected && !res.complete) {
        done(Object.assign(new Error(`body ended after ${n} of ${expected} bytes`), { code: 'DIMG_TRUNCATED' }));
        return;
      }
      if (!res.complete) {
        done(Object.assign(new Error('connection closed mid-body'), { code: 'DIMG_TRUNCATED' }));
        return;
      }
      done(undefined, Buffer.concat(parts));
    });
  });
}

/** A byte limit for messages: `8 MiB`, `64 KiB`, `1000 bytes`. */
function sizeText(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1 << 10 && n % (1 << 10) === 0) return `${n / (1 << 10)} KiB`;
  return `${n} bytes`;
}

/** Retry-After in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(v: string | undefined): number | undefined {
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

function errCode(err: unknown): string {
  const c = (err as { code?: unknown } | null)?.code;
  if (typeof c === 'string') return c;
  if (err instanceof Error && /socket hang up/i.test(err.message)) return 'ECONNRESET';
  return '';
}

function urlText(u: string | URL): string {
  const url = new URL(u);
  return `${url.origin}${url.pathname}`;
}

/** A cancellable delay. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}
