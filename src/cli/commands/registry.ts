/**
 * Registry commands that need no local store: `dimg login`, `dimg logout`, `dimg image tags`
 * (also what `dimg image ls --remote` calls) and `dimg image copy` (registry → registry).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { DimgError, isDimgError } from '../../errors.js';
import type { Digest } from '../../oci/digest.js';
import type { Descriptor } from '../../oci/types.js';
import { parsePlatform } from '../../oci/platform.js';
import { familiarString, parseReference, type Reference } from '../../oci/reference.js';
import {
  RegistryClient,
  credentialKey,
  normaliseRegistry,
  removeCredential,
  saveCredential,
  type RegistryClientOptions,
  type TransferEvent,
} from '../../registry/index.js';
import { humanBytes } from '../format.js';
import { imageCommand } from './image-group.js';

/** Flags every registry-talking command accepts. */
export interface RegistryFlags {
  /** Allow plain HTTP to the registries this command names (loopback registries always may). */
  insecure?: boolean;
  /** A PEM file of extra CA certificates to trust. */
  caFile?: string;
}

/** RegistryClient options from the common flags; `domains` are the registries the command names. */
export function clientOptions(flags: RegistryFlags, domains: string[], env: NodeJS.ProcessEnv = process.env): RegistryClientOptions {
  const o: RegistryClientOptions = { credentials: { env } };
  if (flags.insecure) o.insecure = domains;
  if (flags.caFile) {
    try {
      o.ca = readFileSync(flags.caFile);
    } catch (e) {
      throw new DimgError('CA_FILE_UNREADABLE', `cannot read CA file ${flags.caFile}: ${(e as Error).message}`, 'pass a PEM file with --ca-file');
    }
  }
  if (env.DIMG_DEBUG) o.log = (l) => process.stderr.write(`debug: ${l}\n`);
  return o;
}

function addRegistryFlags(cmd: Command): Command {
  return cmd
    .option('--insecure', 'allow plain HTTP to the registries named here (loopback registries always use HTTP)')
    .option('--ca-file <pem>', 'trust the CA certificates in this PEM file as well as the system ones');
}

/** Parses a registry reference, accepting a `docker://` prefix as skopeo writes it. */
export function parseRemoteReference(s: string, opts: { defaultTag?: boolean } = {}): Reference {
  return parseReference(s.startsWith('docker://') ? s.slice('docker://'.length) : s, opts);
}

/** The tags of a remote repository (`REPO` may carry a tag; it is ignored). Exported for `image ls --remote`. */
export async function listRemoteTags(repo: string, flags: RegistryFlags = {}): Promise<string[]> {
  const ref = parseRemoteReference(repo, { defaultTag: false });
  const client = new RegistryClient(clientOptions(flags, [ref.domain]));
  try {
    return (await client.repository(ref).listTags()).sort();
  } finally {
    client.close();
  }
}

async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const b of process.stdin as AsyncIterable<Buffer>) parts.push(b);
  return Buffer.concat(parts).toString('utf8');
}

interface LoginFlags extends RegistryFlags {
  username?: string;
  password?: string;
  passwordStdin?: boolean;
}

/** `dimg login`: verify credentials against the registry, then store them as `docker login` does. */
export async function login(server: string | undefined, flags: LoginFlags): Promise<void> {
  const domain = normaliseRegistry(server ?? 'docker.io');
  if (flags.password !== undefined && flags.passwordStdin) {
    throw new DimgError('LOGIN_FLAGS_CONFLICT', '--password and --password-stdin are mutually exclusive', 'pipe the password into --password-stdin');
  }
  if (!flags.username) {
    throw new DimgError('LOGIN_USERNAME_REQUIRED', `login to ${domain}: no username given`, 'pass -u USER and the password on stdin with --password-stdin');
  }
  let password: string;
  if (flags.passwordStdin) {
    password = (await readStdin()).replace(/\r?\n$/, '');
  } else if (flags.password !== undefined) {
    process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
    password = flags.password;
  } else {
    throw new DimgError('LOGIN_PASSWORD_REQUIRED', `login to ${domain}: no password given`, 'pipe the password into --password-stdin (dimg does not prompt)');
  }
  if (password === '') throw new DimgError('LOGIN_PASSWORD_REQUIRED', `login to ${domain}: the password is empty`, 'pipe the password into --password-stdin');
  const client = new RegistryClient(clientOptions(flags, [domain]));
  try {
    await client.verifyCredential(domain, { username: flags.username, password });
  } catch (e) {
    if (isDimgError(e, 'REGISTRY_UNAUTHORIZED') || isDimgError(e, 'REGISTRY_DENIED')) {
      throw new DimgError('LOGIN_FAILED', `login to ${domain} failed: the registry rejected the username or password (${e.message})`, 'check the username and password; nothing was stored');
    }
    throw e;
  } finally {
    client.close();
  }
  const saved = await saveCredential(domain, flags.username, password);
  if (saved.kind === 'file') {
    process.stderr.write(`WARNING! Your credentials are stored unencrypted in '${saved.path}'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n\n`);
  }
  process.stdout.write('Login Succeeded\n');
}

/** `dimg logout`: remove stored credentials (file and helper). */
export async function logout(server: string | undefined): Promise<void> {
  const domain = normaliseRegistry(server ?? 'docker.io');
  const found = await removeCredential(domain);
  if (found) process.stdout.write(`Removing login credentials for ${credentialKey(domain)}\n`);
  else process.stdout.write(`Not logged in to ${credentialKey(domain)}\n`);
}

/**
 * Progress of a transfer. Not a TTY: one line per blob and manifest as each completes. A TTY: the same
 * lines, plus a status line (rewritten at most 10 times a second) showing the bytes of blobs in flight.
 * `quiet` prints nothing.
 */
export function progressReporter(quiet: boolean, out: NodeJS.WriteStream = process.stderr): { onEvent: (e: TransferEvent) => void; onBytes?: (d: Descriptor, sent: number) => void } {
  if (quiet) return { onEvent: () => {} };
  const short = (d: string) => (d.startsWith('sha256:') ? d.slice(7, 19) : d);
  const words: Record<string, string> = { exists: 'already exists', mounted: 'mounted', uploaded: 'copied' };
  const tty = Boolean(out.isTTY);
  const inFlight = new Map<string, { sent: number; size: number }>();
  let last = 0;
  const status = () => {
    const parts = [...inFlight].map(([d, p]) => `${short(d)} ${humanBytes(p.sent)}/${humanBytes(p.size)}`);
    out.write(`\r\x1b[K${parts.join('  ')}`);
  };
  return {
    onEvent: (e) => {
      const line = e.kind === 'blob' ? `blob ${short(e.digest)}: ${words[e.outcome]} (${humanBytes(e.size)})` : `manifest ${short(e.digest)}: written as ${short(e.ref)}`;
      if (e.kind === 'blob') inFlight.delete(e.digest);
      out.write(tty ? `\r\x1b[K${line}\n` : `${line}\n`);
      if (tty && inFlight.size > 0) status();
    },
    onBytes: tty
      ? (d, sent) => {
          inFlight.set(d.digest, { sent, size: d.size });
          const now = Date.now();
          if (now - last >= 100) {
            last = now;
            status();
          }
        }
      : undefined,
  };
}

interface CopyFlags extends RegistryFlags {
  allPlatforms?: boolean;
  platform?: string;
  quiet?: boolean;
}

/** `dimg image copy SRC DST` between registries, keeping digests; prints the digest written. */
export async function copy(src: string, dst: string, flags: CopyFlags): Promise<Digest> {
  const s = parseRemoteReference(src);
  const d = parseRemoteReference(dst, { defaultTag: false });
  const client = new RegistryClient(clientOptions(flags, [s.domain, d.domain]));
  try {
    const r = await client.copyImage(s, d, {
      allPlatforms: flags.allPlatforms,
      platform: flags.platform ? parsePlatform(flags.platform) : undefined,
      ...progressReporter(Boolean(flags.quiet)),
    });
    const shown = familiarString({ ...d, tag: d.tag ?? s.tag, digest: undefined });
    process.stdout.write(`${shown}: digest: ${r.digest} size: ${r.size}\n`);
    return r.digest;
  } finally {
    client.close();
  }
}

/** Registers login, logout, image tags and image copy. */
export function register(program: Command): void {
  addRegistryFlags(
    program
      .command('login [server]')
      .description('log in to a registry (default docker.io) and store the credentials like `docker login`')
      .option('-u, --username <user>', 'username')
      .option('-p, --password <password>', 'password (insecure: visible in the process list; prefer --password-stdin)')
      .option('--password-stdin', 'read the password from stdin'),
  ).action((server: string | undefined, flags: LoginFlags) => login(server, flags));

  program
    .command('logout [server]')
    .description('remove stored credentials for a registry (default docker.io)')
    .action((server: string | undefined) => logout(server));

  const image = imageCommand(program);
  addRegistryFlags(image.command('tags <repository>').description('list the tags of a repository in a registry')).action(async (repo: string, flags: RegistryFlags) => {
    for (const t of await listRemoteTags(repo, flags)) process.stdout.write(`${t}\n`);
  });

  addRegistryFlags(
    image
      .command('copy <source> <destination>')
      .description('copy an image between registries without the local store, keeping digests')
      .option('-a, --all-platforms', 'copy a whole index (every platform) instead of the one for --platform')
      .option('--platform <os/arch[/variant]>', 'the platform to copy from an index (default: this host\'s)')
      .option('-q, --quiet', 'print only the final digest line'),
  ).action(async (src: string, dst: string, flags: CopyFlags) => {
    await copy(src, dst, flags);
  });
}
