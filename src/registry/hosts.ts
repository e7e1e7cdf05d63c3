/**
 * Registry names versus the hosts dimg talks to: Docker Hub's aliases, the config.json key each
 * registry's credentials live under, and whether a registry is reached over plain HTTP.
 */
import { isIP } from 'node:net';
import { DOCKER_HUB } from '../oci/reference.js';

/** The API host of Docker Hub (the canonical name `docker.io` serves no API). */
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
/** The key Docker stores Hub credentials under in config.json and credential helpers. */
export const DOCKER_HUB_CONFIG_KEY = 'https://index.docker.io/v1/';

const HUB_NAMES = new Set([DOCKER_HUB, 'index.docker.io', DOCKER_HUB_API_HOST]);

/** Normalises a registry name as users type it (`https://index.docker.io/v1/`, `docker.io`, `host:5000/`) to a reference domain. */
export function normaliseRegistry(server: string): string {
  let s = server.trim().replace(/^[a-z]+:\/\//i, '');
  s = s.split('/')[0] ?? s;
  s = s.toLowerCase();
  return HUB_NAMES.has(s) ? DOCKER_HUB : s;
}

/** The host:port dimg sends API requests to for a registry domain. */
export function apiHost(domain: string): string {
  return HUB_NAMES.has(domain) ? DOCKER_HUB_API_HOST : domain;
}

/** The key credentials for `domain` are stored under (config.json `auths` and credential helpers). */
export function credentialKey(domain: string): string {
  return HUB_NAMES.has(domain) ? DOCKER_HUB_CONFIG_KEY : domain;
}

/** The hostname part of `host[:port]` / `[v6]:port`, without brackets. */
export function hostnameOf(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'));
  const colon = host.lastIndexOf(':');
  return colon > 0 && host.indexOf(':') === colon ? host.slice(0, colon) : host;
}

/** True for `localhost`, `127.0.0.0/8` and `::1`: registries Docker reaches over plain HTTP by default. */
export function isLoopback(host: string): boolean {
  const h = hostnameOf(host).toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * The base URL (`scheme://host`) of a registry's API when nothing is probed. Plain HTTP only for
 * loopback registries and those listed in `insecure` (matched by domain or host:port); everything
 * else is HTTPS. Registries in `tls` use HTTPS even on loopback (a local registry that serves TLS).
 * RegistryClient uses this for registries not marked insecure; for insecure ones it probes whether
 * the endpoint speaks TLS first (HTTPS without verification), and this plain-HTTP URL is the fallback.
 */
export function registryBaseUrl(domain: string, insecure: ReadonlySet<string> = new Set(), tls: ReadonlySet<string> = new Set()): string {
  const host = apiHost(domain);
  if (tls.has(domain) || tls.has(host)) return `https://${host}`;
  const plain = isLoopback(host) || insecure.has(domain) || insecure.has(host);
  return `${plain ? 'http' : 'https'}://${host}`;
}
