/**
 * Registry credentials, the way the Docker CLI keeps them: `config.json` in `$DOCKER_CONFIG` (or
 * `~/.docker`) with `auths`, `credsStore` and `credHelpers`, plus `DOCKER_AUTH_CONFIG` and explicit
 * credentials from the caller. Lookup order: explicit, `credHelpers[host]`, `credsStore`, `auths`.
 */
import { spawn } from 'node:child_process';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { DimgError, messageOf } from '../errors.js';
import { credentialKey, normaliseRegistry } from './hosts.js';
import { redactPatterns } from './redact.js';

/** Credentials for one registry. Either username+password, or an identity token (OAuth2 refresh token). */
export interface Credential {
  username?: string;
  password?: string;
  /** Docker's `identitytoken`: used as a refresh token at the token endpoint. */
  identityToken?: string;
  /** Docker's `registrytoken`: a bearer token sent as is. */
  registryToken?: string;
}

/** Where credentials come from: the environment (for DOCKER_CONFIG / HOME / PATH) and explicit ones by registry domain. */
export interface CredentialOptions {
  env?: NodeJS.ProcessEnv;
  /** Explicit credentials per registry domain (`docker.io`, `127.0.0.1:5000`); they win over config.json. */
  explicit?: Record<string, Credential>;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
  [k: string]: unknown;
}

/** The parts of config.json dimg reads and writes; other members are preserved on write. */
export interface DockerConfigFile {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [k: string]: unknown;
}

/** The directory holding config.json: `$DOCKER_CONFIG`, else `~/.docker`. */
export function dockerConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
}

/** The path of config.json. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(dockerConfigDir(env), 'config.json');
}

/** Reads config.json; a missing file is an empty config, a malformed one is DOCKER_CONFIG_INVALID. */
export function readDockerConfig(env: NodeJS.ProcessEnv = process.env): DockerConfigFile {
  const path = dockerConfigPath(env);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new DimgError('DOCKER_CONFIG_UNREADABLE', `cannot read ${path}: ${messageOf(e)}`, 'check the file\'s permissions');
  }
  if (text.trim() === '') return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as DockerConfigFile;
  } catch (e) {
    // Never echo the content: it holds credentials.
    throw new DimgError('DOCKER_CONFIG_INVALID', `${path} is not valid JSON (${redactPatterns(messageOf(e)).slice(0, 80)})`, 'fix or remove the file, then log in again');
  }
}

/** Writes config.json atomically (temp file, fsync, rename) with mode 0600, as Docker does. */
export function writeDockerConfig(cfg: DockerConfigFile, env: NodeJS.ProcessEnv = process.env): string {
  const path = dockerConfigPath(env);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(cfg, null, '\t') + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return path;
}

/** Host form of a config key (`https://host:5000/v1/` → `host:5000`), Hub aliases folded to docker.io. */
function keyHost(key: string): string {
  return normaliseRegistry(key);
}

function findKey<T>(map: Record<string, T> | undefined, domain: string): string | undefined {
  if (!map) return undefined;
  const exact = credentialKey(domain);
  if (exact in map) return exact;
  if (domain in map) return domain;
  const want = normaliseRegistry(domain);
  return Object.keys(map).find((k) => keyHost(k) === want);
}

/** The credential helper suffix configured for `domain` (credHelpers, then credsStore), if any. */
export function helperFor(cfg: DockerConfigFile, domain: string): string | undefined {
  const k = findKey(cfg.credHelpers, domain);
  if (k !== undefined && cfg.credHelpers![k]) return cfg.credHelpers![k];
  return cfg.credsStore || undefined;
}

function fromAuthEntry(e: AuthEntry): Credential | undefined {
  const c: Credential = {};
  if (e.auth) {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i > 0) {
      c.username = decoded.slice(0, i);
      c.password = decoded.slice(i + 1);
    }
  }
  if (e.username && !c.username) c.username = e.username;
  if (e.password && !c.password) c.password = e.password;
  if (e.identitytoken) c.identityToken = e.identitytoken;
  if (e.registrytoken) c.registryToken = e.registrytoken;
  return c.username || c.identityToken || c.registryToken ? c : undefined;
}

/**
 * The credential to use for registry `domain`, or undefined for anonymous access.
 * Throws CREDENTIAL_HELPER_* when a configured helper is missing or fails (not when it has no entry).
 */
export async function lookupCredential(domain: string, opts: CredentialOptions = {}): Promise<Credential | undefined> {
  const env = opts.env ?? process.env;
  const want = normaliseRegistry(domain);
  if (opts.explicit) {
    const k = Object.keys(opts.explicit).find((x) => normaliseRegistry(x) === want);
    if (k !== undefined) return opts.explicit[k];
  }
  const cfg = readDockerConfig(env);
  const helper = helperFor(cfg, want);
  if (helper) {
    const c = await helperGet(helper, credentialKey(want), env);
    if (c) return c;
  }
  const k = findKey(cfg.auths, want);
  if (k !== undefined) {
    const c = fromAuthEntry(cfg.auths![k]!);
    if (c) return c;
  }
  if (env.DOCKER_AUTH_CONFIG) {
    try {
      const extra = JSON.parse(env.DOCKER_AUTH_CONFIG) as { auths?: Record<string, AuthEntry> };
      const k2 = findKey(extra.auths, want);
      if (k2 !== undefined) return fromAuthEntry(extra.auths![k2]!);
    } catch {
      throw new DimgError('DOCKER_AUTH_CONFIG_INVALID', 'the environment variable DOCKER_AUTH_CONFIG is not valid JSON', 'set it to a JSON object like {"auths":{"host":{"auth":"..."}}}');
    }
  }
  return undefined;
}

/** Runs `docker-credential-NAME ACTION` with `input` on stdin; resolves to its exit code and output. */
function runHelper(name: string, action: string, input: string, env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  const bin = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [action], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => out.push(b));
    child.on('error', (e) => {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new DimgError('CREDENTIAL_HELPER_MISSING', `credential helper ${bin} is configured in ${dockerConfigPath(env)} but not found on PATH`, `install ${bin}, or remove it from credsStore/credHelpers`));
      } else reject(new DimgError('CREDENTIAL_HELPER_FAILED', `credential helper ${bin} could not run: ${messageOf(e)}`, 'check the helper installation'));
    });
    child.on('close', (code) => resolve({ code: code ?? 1, out: Buffer.concat(out).toString('utf8') }));
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

function helperFailure(name: string, action: string, out: string, secrets: string[] = []): DimgError {
  let text = out.trim().split('\n')[0] ?? '';
  for (const s of secrets) if (s) text = text.split(s).join('[REDACTED]');
  return new DimgError('CREDENTIAL_HELPER_FAILED', `credential helper docker-credential-${name} ${action} failed: ${redactPatterns(text).slice(0, 200)}`, 'check the helper (try running it by hand) or your keychain');
}

/** The `get` protocol: server URL on stdin, `{ServerURL,Username,Secret}` on stdout; "not found" is undefined. */
export async function helperGet(name: string, serverUrl: string, env: NodeJS.ProcessEnv = process.env): Promise<Credential | undefined> {
  const { code, out } = await runHelper(name, 'get', serverUrl, env);
  if (code !== 0) {
    if (/credentials not found/i.test(out)) return undefined;
    throw helperFailure(name, 'get', out);
  }
  let v: { Username?: string; Secret?: string };
  try {
    v = JSON.parse(out) as { Username?: string; Secret?: string };
  } catch {
    throw new DimgError('CREDENTIAL_HELPER_FAILED', `credential helper docker-credential-${name} get printed something that is not JSON`, 'check the helper (try running it by hand)');
  }
  if (!v.Secret) return undefined;
  if (v.Username === '<token>') return { identityToken: v.Secret };
  return { username: v.Username ?? '', password: v.Secret };
}

/** The `store` protocol: `{ServerURL,Username,Secret}` on stdin. */
export async function helperStore(name: string, serverUrl: string, username: string, secret: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const { code, out } = await runHelper(name, 'store', JSON.stringify({ ServerURL: serverUrl, Username: username, Secret: secret }), env);
  if (code !== 0) throw helperFailure(name, 'store', out, [secret]);
}

/** The `erase` protocol: server URL on stdin. A "not found" answer is not an error. */
export async function helperErase(name: string, serverUrl: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const { code, out } = await runHelper(name, 'erase', serverUrl, env);
  if (code !== 0 && !/not found/i.test(out)) throw helperFailure(name, 'erase', out);
}

/** Where `saveCredential` put the credentials. */
export type SavedTo = { kind: 'file'; path: string } | { kind: 'helper'; helper: string };

/**
 * Stores credentials for `domain` the way `docker login` does: into the configured credential helper
 * (credHelpers/credsStore) if any, else base64 `auth` in config.json (whose other entries are kept).
 */
export async function saveCredential(domain: string, username: string, password: string, env: NodeJS.ProcessEnv = process.env): Promise<SavedTo> {
  const cfg = readDockerConfig(env);
  const key = credentialKey(normaliseRegistry(domain));
  const helper = helperFor(cfg, normaliseRegistry(domain));
  if (helper) {
    await helperStore(helper, key, username, password, env);
    // Docker leaves an empty entry in auths so `docker login` state is visible; do the same.
    cfg.auths = { ...cfg.auths, [key]: {} };
    writeDockerConfig(cfg, env);
    return { kind: 'helper', helper };
  }
  const auths = { ...cfg.auths };
  const old = findKey(auths, normaliseRegistry(domain));
  if (old !== undefined && old !== key) delete auths[old];
  auths[key] = { auth: Buffer.from(`${username}:${password}`).toString('base64') };
  cfg.auths = auths;
  return { kind: 'file', path: writeDockerConfig(cfg, env) };
}

/** Removes stored credentials for `domain` (helper and file); resolves to whether anything was there. */
export async function removeCredential(domain: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const cfg = readDockerConfig(env);
  const want = normaliseRegistry(domain);
  const helper = helperFor(cfg, want);
  let found = false;
  if (helper) {
    found = (await helperGet(helper, credentialKey(want), env)) !== undefined;
    await helperErase(helper, credentialKey(want), env);
  }
  const k = findKey(cfg.auths, want);
  if (k !== undefined) {
    found = true;
    delete cfg.auths![k];
    writeDockerConfig(cfg, env);
  }
  return found;
}
