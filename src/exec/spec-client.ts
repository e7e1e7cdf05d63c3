/**
 * The registry client configuration a spec implies: registries marked `insecure` (HTTPS unverified,
 * or plain HTTP when they do not speak TLS), credentials from the environment variables named in
 * `auth` (else config.json and helpers), extra CAs, and pull mirrors.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DimgError } from '../errors.js';
import type { RegistryClientOptions } from '../registry/client.js';
import type { Credential } from '../registry/credentials.js';
import { Redactor } from '../registry/redact.js';
import type { Spec } from '../specfile/model.js';

/** Client options for `spec`, reading credentials from `env`. Secrets are registered with the redactor. */
export function clientOptionsForSpec(spec: Spec, env: NodeJS.ProcessEnv = process.env, warn?: (m: string) => void): RegistryClientOptions {
  const redactor = new Redactor();
  const explicit: Record<string, Credential> = {};
  const insecure: string[] = [];
  const mirrors: Record<string, string[]> = {};
  const cas: Buffer[] = [];
  for (const r of Object.values(spec.registries)) {
    if (r.insecure) insecure.push(r.host);
    if (r.auth) {
      const username = env[r.auth.usernameEnv];
      const password = env[r.auth.passwordEnv];
      if (username && password) {
        explicit[r.host] = { username, password };
        redactor.addBasic(username, password);
      } else {
        warn?.(`registry ${r.name}: ${r.auth.usernameEnv}/${r.auth.passwordEnv} are not set; using config.json and credential helpers for ${r.host}`);
      }
    }
    if (r.mirrors.length > 0) {
      // Mirrors are taken to serve the same repository paths under their own host.
      mirrors[r.host] = r.mirrors.map((m) => m.split('/')[0]!);
      for (const m of mirrors[r.host]!) if (insecure.includes(r.host)) insecure.push(m);
    }
    if (r.ca) {
      const path = resolve(spec.dir, r.ca);
      try {
        cas.push(readFileSync(path));
      } catch (e) {
        throw new DimgError('CA_FILE_UNREADABLE', `registry ${r.name}: cannot read CA file ${path}: ${(e as Error).message}`, 'point `ca:` at a PEM file');
      }
    }
  }
  // Plans read hundreds of tags: allow more sockets per registry than one-off commands use.
  const o: RegistryClientOptions = { credentials: { env, explicit }, insecure, mirrors, redactor, maxSockets: 16 };
  if (cas.length > 0) o.ca = cas;
  if (env.DIMG_DEBUG) o.log = (l) => process.stderr.write(`debug: ${l}\n`);
  return o;
}
