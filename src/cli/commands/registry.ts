/**
 * Registry commands: `dimg login`, `dimg logout`, `dimg image tags` and `dimg image ls --remote`,
 * `dimg image copy` (registries, `oci:DIR[:TAG]`, `docker-archive:FILE[:NAME:TAG]`), and
 * `dimg image pull` / `dimg image push` (aliases `dimg pull` / `dimg push`) with the local store.
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
import { shortDigest, transferLines } from '../transfer-lines.js';
import { imageCommand } from './image-group.js';
import { openStoreFor } from '../context.js';
import { withCancellation } from '../cancellation.js';
import { findImage } from '../../image/find.js';
// Direct module imports, not transfer/index.js: a push or a pull then loads neither the archive
// reader/writer nor tar-stream (copy.ts, which opens every kind of endpoint, is imported by copy only).
import { parseEndpoint } from '../../transfer/endpoint.js';
import { pullImage } from '../../transfer/pull.js';
import { pushImage, type PushEvent } from '../../transfer/push.js';

/** Flags every registry-talking command accepts. */
export interface RegistryFlags {
  /** Treat the registries this command names as insecure: HTTPS unverified, or plain HTTP when they do not speak TLS. */
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
    .option('--insecure', 'skip TLS certificate verification for the registries named here, and use plain HTTP when they do not speak TLS')
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
  const client = new RegistryClient({ ...clientOptions(flags, [domain]), onCleartextCredential: flags.insecure ? undefined : cleartextWarning });
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

/**
 * Login's warning before the password goes out unencrypted. Loopback registries are plain HTTP by
 * default (as in Docker), so this is what a user who never asked for plain HTTP sees; `--insecure`
 * says the registry is meant to be plain HTTP and silences it. Other commands only reuse credentials
 * stored here, so the warning is given once, when the password is handed over.
 */
function cleartextWarning(registry: string, origin: string): void {
  process.stderr.write(`WARNING! The credentials for ${registry} are sent over plain HTTP (${origin}), without encryption: anyone who can see the traffic can read them.\nServe the registry over HTTPS, or pass --insecure to confirm it is meant to be plain HTTP.\n`);
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
  const words: Record<string, string> = { exists: 'already exists', mounted: 'mounted', uploaded: 'copied' };
  const lines = transferLines(out);
  return {
    onEvent: (e) => {
      if (e.kind === 'blob') lines.line(`blob ${shortDigest(e.digest)}: ${words[e.outcome]} (${humanBytes(e.size)})`, e.digest);
      else lines.line(`manifest ${shortDigest(e.digest)}: written as ${shortDigest(e.ref)}`);
    },
    onBytes: lines.onBytes,
  };
}

interface CopyFlags extends RegistryFlags {
  allPlatforms?: boolean;
  platform?: string;
  quiet?: boolean;
}

/**
 * `dimg image copy SRC DST` between registries, OCI layouts and Docker archives (any pair, one generic
 * transfer), keeping digests; prints the digest written (the image ID for a Docker archive).
 */
export async function copy(src: string, dst: string, flags: CopyFlags): Promise<Digest> {
  const se = parseEndpoint(src, 'source');
  const de = parseEndpoint(dst, 'destination');
  const domains = [se, de].flatMap((e) => (e.kind === 'registry' ? [e.ref.domain] : []));
  const client = new RegistryClient(clientOptions(flags, domains));
  try {
    const rep = progressReporter(Boolean(flags.quiet));
    const { copyBetween } = await import('../../transfer/copy.js');
    const r = await copyBetween(client, se, de, {
      allPlatforms: flags.allPlatforms,
      platform: flags.platform ? parsePlatform(flags.platform) : undefined,
      onEvent: rep.onEvent,
      onBytes: rep.onBytes,
    });
    // A registry destination is shown as Docker shows names (`busybox:1`, `host:5000/a/b:t`).
    const shown = de.kind === 'registry' ? familiarString(parseReference(r.shown)) : r.shown;
    process.stdout.write(r.id ? `${shown}: id: ${r.id}\n` : `${shown}: digest: ${r.digest} size: ${r.size}\n`);
    return r.digest;
  } finally {
    client.close();
  }
}

/**
 * Docker-style progress of a pull or push. Not a TTY: one line per blob as it completes
 * (`abcd1234ef56: Pushed`, `Layer already exists`, `Mounted from shop/web`, `Pull complete`,
 * `Already exists`). A TTY: the same lines, plus a status line (at most 10 updates a second) with the
 * bytes of blobs in flight. `quiet` prints nothing.
 */
export function blobReporter(kind: 'push' | 'pull', quiet: boolean, out: NodeJS.WriteStream = process.stderr): { onEvent: (e: PushEvent) => void; onBytes?: (d: Descriptor, sent: number) => void } {
  if (quiet) return { onEvent: () => {} };
  const lines = transferLines(out, kind === 'push' ? 'Pushing' : 'Downloading');
  return {
    onEvent: (e) => {
      if (e.kind === 'layer-form') {
        if (e.compressed) lines.line(`${shortDigest(e.diffId)}: Compressed ${humanBytes(e.rawSize)} to ${humanBytes(e.size)}${e.digest === e.diffId ? ' (kept uncompressed: gzip does not pay)' : ''} in ${e.seconds.toFixed(2)}s`);
        return;
      }
      if (e.kind === 'up-to-date') {
        lines.line(`${e.ref}: already up to date in the registry`);
        return;
      }
      if (e.kind !== 'blob') return;
      const what =
        kind === 'pull'
          ? e.outcome === 'exists' ? 'Already exists' : 'Pull complete'
          : e.outcome === 'exists' ? 'Layer already exists' : e.outcome === 'mounted' ? `Mounted from ${'from' in e && e.from ? e.from : 'another repository'}` : 'Pushed';
      lines.line(`${shortDigest(e.digest)}: ${what}`, e.digest);
    },
    onBytes: lines.onBytes,
  };
}

interface PullFlags extends RegistryFlags {
  platform?: string;
  allTags?: boolean;
  quiet?: boolean;
}

/** `dimg image pull REF`: into the store named by `--root`/$DIMG_ROOT; prints Docker's summary lines. */
export async function pull(refArg: string, flags: PullFlags, cmd: Command): Promise<void> {
  const ref = parseRemoteReference(refArg, { defaultTag: !flags.allTags });
  const store = await openStoreFor(cmd);
  const client = new RegistryClient(clientOptions(flags, [ref.domain]));
  try {
    const out = process.stdout;
    if (!flags.quiet && !flags.allTags && ref.tag === 'latest' && !/:[\w][\w.-]*$/.test(refArg.split('/').pop() ?? '')) out.write('Using default tag: latest\n');
    if (!flags.quiet) out.write(`${flags.allTags ? 'Pulling all tags of' : `${ref.tag ?? ref.digest}: Pulling from`} ${familiarString({ domain: ref.domain, path: ref.path })}\n`);
    const reporter = blobReporter('pull', Boolean(flags.quiet), process.stdout);
    let fetched = 0;
    const r = await withCancellation('pull', (signal) =>
      pullImage(store, client, formatFull(ref), {
        platform: flags.platform ? parsePlatform(flags.platform) : undefined,
        allTags: flags.allTags,
        signal,
        onEvent: (e) => {
          if (e.kind === 'blob' && e.outcome !== 'exists') fetched++;
          reporter.onEvent(e);
        },
      }),
    );
    if (flags.quiet) {
      for (const p of r.pulled) out.write(`${p.name}\n`);
      return;
    }
    for (const p of r.pulled) out.write(`Digest: ${p.descriptor.digest}\n`);
    const shown = flags.allTags ? familiarString({ domain: ref.domain, path: ref.path }) : familiarString(ref);
    out.write(fetched > 0 ? `Status: Downloaded newer image for ${shown}\n` : `Status: Image is up to date for ${shown}\n`);
    for (const p of r.pulled) out.write(`${p.name}\n`);
  } finally {
    client.close();
  }
}

function formatFull(ref: Reference): string {
  return `${ref.domain}/${ref.path}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

interface PushFlags extends RegistryFlags {
  platform?: string;
  quiet?: boolean;
}

/**
 * `dimg image push NAME[:TAG] [DEST]`: the local image NAME to its own name, or to DEST (a tag in DEST
 * defaults to NAME's). Prints Docker's lines and the final `TAG: digest: sha256:… size: N`.
 */
export async function push(name: string, dest: string | undefined, flags: PushFlags, cmd: Command): Promise<Digest> {
  const store = await openStoreFor(cmd);
  const platform = flags.platform ? parsePlatform(flags.platform) : undefined;
  const found = await findImage(store, name, platform);
  let target: Reference;
  if (dest) {
    const d = parseRemoteReference(dest, { defaultTag: false });
    if (d.digest) throw new DimgError('PUSH_TARGET_INVALID', `push destination ${dest} names a digest`, 'push to NAME[:TAG]; the digest is decided by the image');
    const srcTag = found.entry.name ? parseReference(found.entry.name).tag : undefined;
    target = { domain: d.domain, path: d.path, tag: d.tag ?? srcTag ?? 'latest' };
  } else {
    let n: Reference;
    try {
      n = parseReference(name);
    } catch {
      throw new DimgError('PUSH_TARGET_INVALID', `push of ${name}: an image ID has no registry name`, 'give a destination: dimg image push IMAGE HOST/REPO:TAG');
    }
    if (n.digest || found.entry.name === undefined) throw new DimgError('PUSH_TARGET_INVALID', `push of ${name}: the image has no tag to push to`, 'give a destination: dimg image push IMAGE HOST/REPO:TAG');
    target = n;
  }
  const client = new RegistryClient(clientOptions(flags, [target.domain]));
  try {
    if (!flags.quiet) process.stdout.write(`The push refers to repository [${familiarString({ domain: target.domain, path: target.path })}]\n`);
    const r = await withCancellation('push', (signal) => pushImage(store, client, found.image.descriptor, formatFull(target), { ...blobReporter('push', Boolean(flags.quiet), process.stdout), signal }));
    process.stdout.write(`${target.tag}: digest: ${r.digest} size: ${r.size}\n`);
    return r.digest;
  } finally {
    client.close();
  }
}

/** Adds `--remote REPO` to `dimg image ls` / `dimg images` (registered by the local image commands): lists the registry's tags instead. */
function addRemoteListing(cmd: Command | undefined): void {
  if (!cmd) return;
  addRegistryFlags(cmd.option('--remote <repository>', 'list the tags of a repository in a registry instead of local images'));
  cmd.hook('preAction', async (_self, action) => {
    const flags = action.opts() as RegistryFlags & { remote?: string; quiet?: boolean };
    if (!flags.remote) return;
    const tags = await listRemoteTags(flags.remote, flags);
    const ref = parseRemoteReference(flags.remote, { defaultTag: false });
    const repo = familiarString({ domain: ref.domain, path: ref.path });
    if (flags.quiet) process.stdout.write(tags.map((t) => `${t}\n`).join(''));
    else {
      const w = Math.max('REPOSITORY'.length, repo.length) + 3;
      process.stdout.write(`${'REPOSITORY'.padEnd(w)}TAG\n${tags.map((t) => `${repo.padEnd(w)}${t}\n`).join('')}`);
    }
    // The local listing must not run: replace this invocation's action.
    action.action(() => {});
  });
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

  for (const c of [image.command('pull'), program.command('pull')]) {
    addRegistryFlags(
      c
        .argument('<reference>', 'NAME[:TAG|@DIGEST], e.g. busybox, 127.0.0.1:5000/shop/web:1.4')
        .description('pull an image from a registry (through configured mirrors) into the local store')
        .option('--platform <os/arch[/variant]>', 'the platform to pull from a multi-platform image (default: this host\'s)')
        .option('-a, --all-tags', 'pull every tag of the repository')
        .option('-q, --quiet', 'print only the pulled image names'),
    ).action((ref: string, flags: PullFlags, cmd: Command) => pull(ref, flags, cmd));
  }
  for (const c of [image.command('push'), program.command('push')]) {
    addRegistryFlags(
      c
        .argument('<name>', 'local image NAME[:TAG] (or ID, with a destination)')
        .argument('[destination]', 'push to this HOST/REPO[:TAG] instead of the image\'s own name')
        .description('push a local image to a registry (layers compressed once, remembered)')
        .option('--platform <os/arch[/variant]>', 'which platform of a multi-platform local image to push')
        .option('-q, --quiet', 'print only the final digest line'),
    ).action(async (name: string, dest: string | undefined, flags: PushFlags, cmd: Command) => {
      await push(name, dest, flags, cmd);
    });
  }
  addRemoteListing(image.commands.find((c) => c.name() === 'ls'));
  addRemoteListing(program.commands.find((c) => c.name() === 'images'));
}
