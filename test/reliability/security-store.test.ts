/**
 * Security of the local store (issue #20).
 *
 * D5: the store is private to its owner. A store made under umask 0 from a rootfs that holds a
 * setuid-root binary, with a RUN step so the overlay layer dirs are populated, must not let another
 * local user (`nobody`) reach, list or run anything in it: a setuid-root file there would otherwise
 * be a local root for everybody. Stores made by older dimg versions (0755) and loose directories a
 * user points DIMG_ROOT at are tightened when opened; a root owned by another user is refused.
 *
 * D8: garbage collection respects in-flight work. `dimg image prune -a -f --cache` looping in
 * another process while `dimg apply` builds (a rootfs base, a pulled registry base, COPY and RUN
 * steps, several images) must never make the apply fail, remove an image the apply named while it
 * still runs, or leave an image whose content is gone. A lease counts only while its process
 * (same pid and start time) lives, and parallel tasks of one process take turns at the store lock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dimg, dimgOk, type CliOptions, type CliResult } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { startRegistry } from '../support/registry.js';
import { tempDir } from '../support/tmp.js';
import { requireRoot, requireTool, run } from '../support/tools.js';
import { Store } from '../../src/store/store.js';
import { collectGarbage } from '../../src/store/gc.js';
import { processStart } from '../../src/store/leases.js';

const NOBODY = 65534;

/**
 * Runs `argv` as user and group nobody without supplementary groups. Through a shell: setpriv still
 * holds root's capabilities while it resolves the path it execs, so `setpriv … FILE` would reach
 * FILE where nobody could not; the shell it starts has none.
 */
function asNobody(argv: string[]): { status: number | null; out: string } {
  const setpriv = requireTool('setpriv', 'util-linux');
  const r = spawnSync(setpriv, [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '/bin/sh', '-c', 'exec "$@"', 'sh', ...argv], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}${r.error ? r.error.message : ''}` };
}

/** Every path under `dir` (as root sees it), and those that are setuid or setgid files. */
function walk(dir: string): { all: string[]; setuid: string[] } {
  const all: string[] = [];
  const setuid: string[] = [];
  const visit = (p: string) => {
    for (const name of readdirSync(p)) {
      const child = join(p, name);
      const st = lstatSync(child);
      all.push(child);
      if (st.isFile() && st.mode & 0o6000) setuid.push(child);
      if (st.isDirectory()) visit(child);
    }
  };
  visit(dir);
  return { all, setuid };
}

/** The permission bits of `path` in octal, for messages. */
function modeOf(path: string): string {
  return (statSync(path).mode & 0o7777).toString(8).padStart(4, '0');
}

test('a store made under umask 0 is private: user nobody cannot reach, list or run anything in it, setuid-root files included', async (t) => {
  requireRoot('building with RUN steps and switching to user nobody');
  const dir = tempDir(t);
  // The test dir itself must not be the barrier: only the store's own permissions may stop nobody.
  chmodSync(dir, 0o755);
  const rootfs = makeBusyboxRootfs(join(dir, 'rootfs'));
  // A setuid-root `id`: run by nobody from a reachable store it would report euid 0.
  copyFileSync(requireTool('id', 'coreutils'), join(rootfs, 'bin', 'id-suid'));
  chownSync(join(rootfs, 'bin', 'id-suid'), 0, 0);
  chmodSync(join(rootfs, 'bin', 'id-suid'), 0o4755);
  mkdirSync(join(dir, 'ctx'));
  writeFileSync(join(dir, 'ctx', 'note.txt'), 'hello\n');
  writeFileSync(
    join(dir, 'images.yaml'),
    `version: 1
project: priv
images:
  priv:
    from: { rootfs: ./rootfs }
    context: ./ctx
    steps:
      - copy: note.txt
        to: /etc/
      - run: cp /bin/id-suid /bin/id-suid2 && chmod 4755 /bin/id-suid2
      - run: echo done > /done
    repository: priv/app
    tags: ["1"]
`,
  );
  const store = join(dir, 'store');
  const opts: CliOptions = { root: store, cwd: dir, umask: 0, env: { SOURCE_DATE_EPOCH: '0' } };
  await dimgOk(['apply', '--progress', 'plain'], opts);
  // `image import` unpacks nothing but writes blobs and index entries under umask 0 too.
  await dimgOk(['image', 'import', rootfs, 'priv/imported:1'], opts);

  // Sanity: the store really holds setuid-root files in unpacked layer dirs (the base layer dir and
  // the RUN step's upperdir), so the checks below test something.
  const { all, setuid } = walk(store);
  assert.ok(setuid.filter((p) => p.includes('/overlay/')).length >= 2, `expected setuid files in the overlay layer dirs, found: ${setuid.join(', ')}`);

  assert.equal(modeOf(store), '0700', 'the store root must be 0700');
  for (const name of readdirSync(store)) {
    const p = join(store, name);
    if (lstatSync(p).isDirectory()) assert.equal(statSync(p).mode & 0o077, 0, `${p} is ${modeOf(p)}: directories dimg makes in the store must not be group- or world-accessible`);
  }

  // As nobody: the store cannot be listed, no path in it can be reached, no setuid file can be run.
  const ls = asNobody(['/bin/ls', store]);
  assert.notEqual(ls.status, 0, `nobody could list the store: ${ls.out}`);
  assert.match(ls.out, /Permission denied/);
  const reachable = asNobody(['/bin/sh', '-c', 'for p; do if [ -e "$p" ] || [ -L "$p" ]; then echo "$p"; fi; done', 'sh', ...all]);
  assert.equal(reachable.out.trim(), '', `nobody can reach these store paths:\n${reachable.out}`);
  for (const file of setuid) {
    const r = asNobody([file, '-u']);
    assert.notEqual(r.status, 0, `nobody ran ${file} (printed euid ${r.out.trim()})`);
    assert.match(r.out, /Permission denied/, file);
  }
});

test('opening a store tightens an older 0755 store and a loose user-chosen root, and refuses a root owned by another user', async (t) => {
  requireRoot('creating a directory owned by another user');
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const rootfs = makeBusyboxRootfs(join(dir, 'rootfs'));

  // A store as an older dimg left it: everything 0755.
  const old = join(dir, 'old');
  await dimgOk(['image', 'import', rootfs, 'old/img:1'], { root: old });
  chmodSync(old, 0o755);
  for (const name of readdirSync(old)) if (lstatSync(join(old, name)).isDirectory()) chmodSync(join(old, name), 0o755);
  const reached = asNobody(['/bin/ls', join(old, 'oci')]);
  assert.equal(reached.status, 0, `setup: nobody should reach the old store before it is opened: ${reached.out}`);
  const ls = await dimgOk(['image', 'ls'], { root: old });
  assert.match(ls.stdout, /old\/img/);
  assert.equal(modeOf(old), '0700', 'an old store root is tightened to 0700 when opened');
  for (const name of readdirSync(old)) {
    const p = join(old, name);
    if (lstatSync(p).isDirectory()) assert.equal(statSync(p).mode & 0o077, 0, `${p} is still ${modeOf(p)}`);
  }
  assert.match(ls.stderr, /permissions/i, 'tightening an existing store is reported');
  const quiet = await dimgOk(['image', 'ls'], { root: old });
  assert.equal(quiet.stderr, '', 'a store that is already private opens without a warning');

  // A directory the user made world-writable and pointed DIMG_ROOT at.
  const chosen = join(dir, 'chosen');
  mkdirSync(chosen);
  chmodSync(chosen, 0o777);
  const r = await dimgOk(['image', 'ls'], { root: chosen });
  assert.equal(modeOf(chosen), '0700');
  assert.match(r.stderr, new RegExp(`${chosen}.*0777.*0700`));

  // Missing parents of a new store root are created without group/world write even under umask 0.
  const deep = join(dir, 'a', 'b', 'store');
  await dimgOk(['image', 'ls'], { root: deep, umask: 0 });
  assert.equal(modeOf(deep), '0700');
  assert.equal(statSync(join(dir, 'a')).mode & 0o022, 0, `a parent dimg created is ${modeOf(join(dir, 'a'))}`);
  assert.equal(statSync(join(dir, 'a', 'b')).mode & 0o022, 0);

  // A root owned by someone else: that user could swap what dimg reads and writes as root.
  const foreign = join(dir, 'foreign');
  mkdirSync(foreign, { mode: 0o700 });
  chownSync(foreign, NOBODY, NOBODY);
  const refused = await dimg(['image', 'ls'], { root: foreign });
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, new RegExp(`error: .*${foreign}.*uid ${NOBODY}`));
  assert.match(refused.stderr, /hint: /);
  assert.equal(readdirSync(foreign).length, 0, 'nothing is created in a refused store root');
});

/** One finished CLI run with the time (ms since epoch) its process was seen to end. */
interface TimedRun extends CliResult {
  endedAt: number;
}

async function timed(args: string[], opts: CliOptions): Promise<TimedRun> {
  const r = await dimg(args, opts);
  return { ...r, endedAt: Date.now() };
}

/** Names and IDs of the images an `apply --progress json` built and named. */
function namedByApply(stdout: string): Array<{ name: string; digest: string; id: string }> {
  const out: Array<{ name: string; digest: string; id: string }> = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const e = JSON.parse(line) as { type?: string; digest?: string; id?: string; tags?: string[] };
    if (e.type === 'build-image-done') for (const name of e.tags ?? []) out.push({ name, digest: e.digest!, id: e.id! });
  }
  return out;
}

/** name → manifest digest of every named image in the store's index.json. */
function storeNames(store: string): Map<string, string> {
  const index = JSON.parse(readFileSync(join(store, 'oci', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
  const out = new Map<string, string>();
  for (const m of index.manifests) {
    const name = m.annotations?.['io.containerd.image.name'];
    if (name) out.set(name, m.digest);
  }
  return out;
}

const GC_ROUNDS = 5;

test('image prune -a -f --cache looping while apply builds never breaks the build, its images or the store', async (t) => {
  requireRoot('apply with RUN steps');
  const skopeo = requireTool('skopeo', 'skopeo');
  const umoci = requireTool('umoci', 'umoci');
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const dir = tempDir(t);
  const rootfs = makeBusyboxRootfs(join(dir, 'rootfs'));
  // A registry base, pulled by the apply (and pruned again and again): seeded from another store.
  const pulled = `${reg.host}/gc/busybox:1`;
  const seed: CliOptions = { root: join(dir, 'seed'), env: { SOURCE_DATE_EPOCH: '0' } };
  await dimgOk(['image', 'import', rootfs, pulled], seed);
  writeFileSync(join(rootfs, 'etc', 'motd'), 'rootfs base\n');
  await dimgOk(['image', 'push', pulled], seed);
  mkdirSync(join(dir, 'ctx'));
  const apps = ['app', 'tool', 'web'];
  writeFileSync(
    join(dir, 'images.yaml'),
    `version: 1
project: gcrace
images:
  base:
    from: { rootfs: ./rootfs }
    repository: gc/base
    tags: ["1"]
${apps
  .map(
    (n) => `  ${n}:
    from: base
    context: ./ctx
    steps:
      - copy: ${n}.bin
        to: /data/
      - run: sha256sum /data/${n}.bin > /sum && cp /etc/motd /data/motd
      - copy: note.txt
        to: /etc/
    repository: gc/${n}
    tags: ["1"]
`,
  )
  .join('')}  pulled:
    from: ${pulled}
    context: ./ctx
    steps:
      - copy: note.txt
        to: /etc/
      - run: cat /etc/note.txt > /seen
    repository: gc/pulled
    tags: ["1"]
`,
  );
  const opts: CliOptions = { root: join(dir, 'store'), cwd: dir, env: { SOURCE_DATE_EPOCH: '0' }, timeoutMs: 120_000 };
  const failures: string[] = [];
  for (let round = 0; round < GC_ROUNDS; round++) {
    for (const n of apps) writeFileSync(join(dir, 'ctx', `${n}.bin`), randomBytes(1 << 20));
    writeFileSync(join(dir, 'ctx', 'note.txt'), `round ${round}\n`);
    const started = Date.now();
    let stop = false;
    const prunes: TimedRun[] = [];
    const loop = (async () => {
      while (!stop) prunes.push(await timed(['image', 'prune', '-a', '-f', '--cache'], opts));
    })();
    const apply = await timed(['apply', '--progress', 'json', '--parallelism', '4'], opts);
    stop = true;
    await loop;
    const problems: string[] = [];
    if (apply.code !== 0) problems.push(`apply exited ${apply.code}: ${apply.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    for (const p of prunes) if (p.code !== 0) problems.push(`a prune exited ${p.code}: ${p.stderr.trim()}`);
    // An image apply named may be gone only when a prune that outlived the apply deleted it: while
    // the apply runs, what it builds and names is in use.
    const after = prunes.filter((p) => p.endedAt >= apply.endedAt).map((p) => p.stdout).join('\n');
    const names = storeNames(opts.root!);
    const named = namedByApply(apply.stdout);
    for (const img of named) {
      const now = names.get(img.name);
      if (now === undefined && !after.includes(`deleted: ${img.id}`)) problems.push(`${img.name} (${img.id.slice(7, 19)}), named by apply, is gone`);
      if (now !== undefined && now !== img.digest) problems.push(`${img.name} points at ${now}, apply named ${img.digest}`);
      if (now !== undefined) {
        const inspect = await dimg(['image', 'inspect', img.name], opts);
        if (inspect.code !== 0) problems.push(`image inspect ${img.name}: ${inspect.stderr.trim()}`);
      }
    }
    const verify = await dimg(['store', 'verify'], opts);
    if (verify.code !== 0) problems.push(`store verify: ${verify.stdout.trim()}`);
    console.log(`# gc race round ${round + 1}: ${prunes.length} prunes during a ${apply.endedAt - started} ms apply, ${named.length} names, ${problems.length === 0 ? 'ok' : problems.join('; ')}`);
    if (problems.length > 0) failures.push(`round ${round + 1}: ${problems.join('\n  ')}`);
  }
  assert.deepEqual(failures, [], `prune during apply broke the store:\n${failures.join('\n')}`);

  // Without pruning, apply converges and every image is whole: skopeo reads each one out of a saved
  // archive (checking every blob's digest) and umoci unpacks one.
  await dimgOk(['apply', '--progress', 'plain'], opts);
  const plan = await dimg(['plan', '--detailed-exitcode'], opts);
  assert.equal(plan.code, 0, `plan after the last apply shows changes:\n${plan.stdout}${plan.stderr}`);
  await dimgOk(['store', 'verify'], opts);
  const refs = ['gc/base:1', ...apps.map((n) => `gc/${n}:1`), 'gc/pulled:1'];
  const archive = join(dir, 'all.tar');
  await dimgOk(['image', 'save', '-o', archive, ...refs], opts);
  for (const ref of refs) {
    await dimgOk(['image', 'inspect', ref], opts);
    run(skopeo, ['copy', '-q', `docker-archive:${archive}:${ref}`, `oci:${join(dir, 'out')}:${ref.replace(/[/:]/g, '-')}`]);
  }
  run(umoci, ['unpack', '--image', `${join(dir, 'out')}:gc-app-1`, join(dir, 'bundle')]);
  assert.equal(readFileSync(join(dir, 'bundle', 'rootfs', 'data', 'motd'), 'utf8'), 'rootfs base\n');
  assert.match(readFileSync(join(dir, 'bundle', 'rootfs', 'sum'), 'utf8'), /^[0-9a-f]{64} {2}\/data\/app\.bin\n$/);
});

test('a lease counts only while its process lives: a dead or reused pid never keeps content from GC', async (t) => {
  const root = tempDir(t);
  const store = await Store.open(root);
  const blob = async (text: string) => (await store.blobs.writeBytes(Buffer.from(text))).digest;
  const [kept, dead, reused] = [await blob('claimed by a live process'), await blob('claimed by a dead one'), await blob('claimed under a reused pid')];
  const sleeper = spawn('sleep', ['60']);
  t.after(() => sleeper.kill());
  await new Promise((r) => sleeper.once('spawn', r));
  const leases = join(root, 'leases');
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const lease = (pid: number, start: string | undefined, digest: string) => writeFileSync(join(leases, String(pid)), `${JSON.stringify({ pid, start, boot })}\nblob ${digest}\n`);
  lease(sleeper.pid!, processStart(sleeper.pid!), kept);
  // A pid no process has, and a live pid whose process started at another time (the pid was reused).
  lease(4_000_000, '12345', dead);
  const other = spawn('sleep', ['60']);
  t.after(() => other.kill());
  await new Promise((r) => other.once('spawn', r));
  lease(other.pid!, '1', reused);

  await collectGarbage(store);
  assert.equal(await store.blobs.has(kept), true, 'the live lease keeps its blob');
  assert.equal(await store.blobs.has(dead), false, 'a dead process keeps nothing');
  assert.equal(await store.blobs.has(reused), false, 'a reused pid keeps nothing');
  assert.deepEqual(readdirSync(leases).sort(), [String(process.pid), String(sleeper.pid)].sort(), 'dead leases are removed');

  sleeper.kill();
  await new Promise((r) => sleeper.once('exit', r));
  await collectGarbage(store);
  assert.equal(await store.blobs.has(kept), false, 'once its process is gone, the lease keeps nothing');
});
