/**
 * Signals stop dimg promptly (issue #20, D7): `dimg apply` whose base image is still downloading over
 * a slow link (the real registry behind a proxy that trickles the layer blob) stops within two seconds
 * of SIGTERM or SIGINT, exits as a process stopped by that signal does (143 / 130 in a shell), says
 * why on stderr without a stack trace, and leaves the store valid: no partial blob, no name for an
 * image it did not finish, nothing `store verify` objects to, and the next apply completes.
 *
 * A closed stdout ends a command the way it ends `cat` or `docker save`: quietly, with the status of
 * SIGPIPE (141), no stack trace, and the store left as it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIMG_BIN, REPO_ROOT, dimg, type CliOptions } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { startRegistry } from '../support/registry.js';
import { tempDir } from '../support/tmp.js';

/** A dimg child that can be signalled: when it exited (ms since epoch), its status and output. */
interface Running {
  signal(sig: NodeJS.Signals): number;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; at: number }>;
}

function spawnDimg(args: string[], opts: CliOptions): Running {
  const child = spawn(process.execPath, [DIMG_BIN, ...args], { cwd: opts.cwd ?? REPO_ROOT, env: { ...process.env, ...opts.env, DIMG_ROOT: opts.root }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; at: number }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr, at: Date.now() }));
  });
  return {
    signal: (sig) => {
      child.kill(sig);
      return Date.now();
    },
    done,
  };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The shell's view of how a process ended: its exit code, or 128 + the signal number. */
function shellStatus(r: { code: number | null; signal: NodeJS.Signals | null }): number {
  if (r.signal) return 128 + ({ SIGINT: 2, SIGTERM: 15, SIGKILL: 9 } as Record<string, number>)[r.signal]!;
  return r.code ?? -1;
}

test('apply (and image pull) stop within 2 s of SIGTERM or SIGINT while the base downloads, and leave the store valid', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const dir = tempDir(t);
  makeBusyboxRootfs(join(dir, 'rootfs'));
  // Incompressible, so the base layer is a 6 MiB blob: minutes at the trickle rate below.
  writeFileSync(join(dir, 'rootfs', 'big.bin'), randomBytes(6 << 20));
  mkdirSync(join(dir, 'ctx'));
  writeFileSync(join(dir, 'ctx', 'app.txt'), 'app\n');
  writeFileSync(
    join(dir, 'seed.yaml'),
    `version: 1
project: sig-seed
registries:
  direct: { url: ${reg.host}, insecure: true }
images:
  base:
    from: { rootfs: ./rootfs }
    repository: sig/base
    tags: ["1"]
    push: [direct]
`,
  );
  writeFileSync(
    join(dir, 'images.yaml'),
    `version: 1
project: sig
registries:
  slow: { url: ${proxy.host}, insecure: true }
images:
  app:
    from: ${proxy.host}/sig/base:1
    context: ./ctx
    steps:
      - copy: app.txt
        to: /app/
    tags: ["1"]
`,
  );
  const env = { SOURCE_DATE_EPOCH: '0' };
  const seeded = await dimg(['apply', 'seed.yaml', '--progress', 'plain'], { root: join(dir, 'seed-store'), cwd: dir, env, timeoutMs: 120_000 });
  assert.equal(seeded.code, 0, seeded.stderr);
  const root = join(dir, 'store');

  // `image pull` of the same base is stopped the same way (it shares the transfer code and the handler).
  const runs = [
    ['SIGTERM', 143, ['apply', '--progress', 'plain'], root],
    ['SIGINT', 130, ['apply', '--progress', 'plain'], root],
    ['SIGTERM', 143, ['image', 'pull', '--insecure', `${proxy.host}/sig/base:1`], join(dir, 'pull-store')],
  ] as const;
  for (const [sig, status, args, storeRoot] of runs) {
    const what = args[0] === 'apply' ? 'apply' : 'pull';
    const opts: CliOptions = { root: storeRoot, cwd: dir, env };
    proxy.reset();
    proxy.inject({ kind: 'trickle', bytesPerSecond: 256 << 10, match: (m, path) => m === 'GET' && /\/blobs\/sha256:/.test(path), count: 100 });
    const run = spawnDimg([...args], opts);
    // Signal once the layer is flowing: the base's config blob is small, the layer is what trickles.
    await until(() => proxy.trickled > 300 << 10, 60_000, 'the base layer download to start');
    const sent = run.signal(sig);
    const killer = setTimeout(() => run.signal('SIGKILL'), 10_000);
    const r = await run.done;
    clearTimeout(killer);
    const took = r.at - sent;
    console.log(`# ${what} ${sig}: stopped ${took} ms after the signal, status ${shellStatus(r)}; stderr: ${JSON.stringify(r.stderr.trim().split('\n').slice(-4))}`);
    assert.notEqual(r.signal, 'SIGKILL', `${what} ${sig}: ignored the signal (killed after 10 s):\n${r.stderr}`);
    assert.ok(took < 2000, `${what} ${sig}: took ${took} ms to stop`);
    assert.equal(shellStatus(r), status, `${what} ${sig}: exit ${r.code ?? r.signal}:\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${sig}.*(cancel|stop)|(cancel|stop).*${sig}`, 'i'), `${what} ${sig}: stderr says it was stopped by the signal:\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /^\s+at .+:\d+:\d+\)?$/m, `${what} ${sig}: no stack trace`);
    assert.doesNotMatch(r.stderr, /internal error/, sig);

    // Nothing half-written is visible: no temp file left, no image named, and the store verifies.
    const tmp = join(storeRoot, 'tmp');
    const leftovers = existsSync(tmp) ? readdirSync(tmp) : [];
    assert.deepEqual(leftovers, [], `${what} ${sig}: temp files left in the store`);
    const indexFile = join(storeRoot, 'oci', 'index.json');
    const index = JSON.parse(existsSync(indexFile) ? readFileSync(indexFile, 'utf8') : '{}') as { manifests?: { annotations?: Record<string, string> }[] };
    const names = (index.manifests ?? []).map((m) => m.annotations?.['org.opencontainers.image.ref.name']);
    assert.deepEqual(names, [], `${what} ${sig}: the store names images it did not finish`);
    const verify = await dimg(['store', 'verify'], opts);
    assert.equal(verify.code, 0, `${what} ${sig}: store verify after the signal:\n${verify.stdout}${verify.stderr}`);
  }

  // Without the slow link, the next apply completes.
  proxy.reset();
  const opts: CliOptions = { root, cwd: dir, env };
  const again = await dimg(['apply', '--progress', 'plain'], { ...opts, timeoutMs: 120_000 });
  assert.equal(again.code, 0, again.stderr);
  const plan = await dimg(['plan', '--detailed-exitcode'], opts);
  assert.equal(plan.code, 0, `plan after the completed apply:\n${plan.stdout}${plan.stderr}`);
});

test('image save into a pipe closed early (| head -c 100) exits 141 quietly and leaves the store intact', async (t) => {
  const dir = tempDir(t);
  makeBusyboxRootfs(join(dir, 'rootfs'));
  writeFileSync(join(dir, 'rootfs', 'big.bin'), randomBytes(4 << 20));
  const root = join(dir, 'store');
  const imported = await dimg(['image', 'import', './rootfs', 'test/epipe:1'], { root, cwd: dir });
  assert.equal(imported.code, 0, imported.stderr);
  const errFile = join(dir, 'save.err');
  // Exactly the user's pipeline, in bash for PIPESTATUS: dimg's own status, its stderr kept apart.
  const r = spawnSync('bash', ['-c', '"$0" "$1" image save test/epipe:1 2>"$2" | head -c 100 >/dev/null; echo "${PIPESTATUS[0]}"', process.execPath, DIMG_BIN, errFile], {
    cwd: dir,
    env: { ...process.env, DIMG_ROOT: root },
    encoding: 'utf8',
    timeout: 60_000,
  });
  const status = Number(r.stdout.trim());
  const stderr = readFileSync(errFile, 'utf8');
  assert.equal(status, 141, `dimg image save | head -c 100: status ${r.stdout.trim()}, stderr:\n${stderr}`);
  assert.doesNotMatch(stderr, /internal error|EPIPE|^\s+at /m, `no stack trace or internal error:\n${stderr}`);
  assert.equal(stderr.trim().split('\n').filter(Boolean).length <= 1, true, `at most one line on stderr:\n${stderr}`);

  const tmp = join(root, 'tmp');
  assert.deepEqual(existsSync(tmp) ? readdirSync(tmp) : [], [], 'temp files left in the store');
  assert.deepEqual(readdirSync(join(root, 'leases')), [], 'the lease of the stopped save was not released');
  const verify = await dimg(['store', 'verify'], { root, cwd: dir });
  assert.equal(verify.code, 0, `store verify:\n${verify.stdout}${verify.stderr}`);
  const whole = await dimg(['image', 'save', '-o', join(dir, 'all.tar'), 'test/epipe:1'], { root, cwd: dir });
  assert.equal(whole.code, 0, `a full save afterwards:\n${whole.stderr}`);

  // Any other write failure is a real error, not a quiet stop: a full disk behind the redirect.
  const full = spawnSync('bash', ['-c', '"$0" "$1" image save test/epipe:1 >/dev/full', process.execPath, DIMG_BIN], { cwd: dir, env: { ...process.env, DIMG_ROOT: root }, encoding: 'utf8', timeout: 60_000 });
  assert.equal(full.status, 1, `save > /dev/full: status ${full.status}:\n${full.stderr}`);
  assert.match(full.stderr, /^error: cannot write to standard output: .*ENOSPC/m, full.stderr);
  assert.match(full.stderr, /^hint: /m, full.stderr);
  assert.doesNotMatch(full.stderr, /internal error|^\s+at /m, full.stderr);
});
