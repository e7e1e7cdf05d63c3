/**
 * `dimg lock` and `--frozen-lock` end to end (issue #17, lock semantics): a frozen lock builds on the
 * pinned digests even after upstream retags the base, and fails only for a base it does not pin;
 * `dimg lock` keeps pins, `--update [IMAGE]` moves them; a killed `dimg lock` never loses the
 * committed images.lock. A real registry, a base project that moves the upstream tag, skopeo as the
 * witness of what was built on what.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { DIMG_BIN, dimg, dimgOk, type CliOptions } from '../support/cli.js';
import { startRegistry } from '../support/registry.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { tempDir } from '../support/tmp.js';
import { remoteDigest, remoteManifest } from '../support/skopeo.js';

const ok = (args: string[], opts: CliOptions) => dimgOk(args, { timeoutMs: 300_000, ...opts });

/** An upstream project publishing lib/base:1 and lib/base:2; `bump` changes its content. */
function upstream(dir: string, host: string) {
  makeBusyboxRootfs(join(dir, 'rootfs'));
  writeFileSync(
    join(dir, 'images.yaml'),
    `version: 1
project: upstream
registries:
  r: { url: ${host}, insecure: true }
images:
  base:
    from: { rootfs: ./rootfs }
    repository: lib/base
    tags: ["1", "2"]
    push: [r]
`,
  );
  return { bump: (n: number) => writeFileSync(join(dir, 'rootfs', 'etc', 'release'), `${n}\n`) };
}

function app(dir: string, host: string, extra = '') {
  mkdirSync(join(dir, 'ctx'), { recursive: true });
  writeFileSync(join(dir, 'ctx', 'app.txt'), 'app\n');
  writeFileSync(
    join(dir, 'images.yaml'),
    `version: 1
project: app
registries:
  r: { url: ${host}, insecure: true }
images:
  app:
    from: ${host}/lib/base:1
    context: ./ctx
    steps:
      - copy: app.txt
        to: /
    repository: shop/app
    tags: ["1"]
    push: [r]
${extra}`,
  );
}

/** A registry with lib/base published by an upstream project, and an empty app directory beside it. */
async function published(t: NonNullable<Parameters<typeof tempDir>[0]>) {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const up = join(tempDir(t), 'upstream');
  const mine = join(tempDir(t), 'app');
  mkdirSync(up);
  mkdirSync(mine);
  const u = upstream(up, reg.host);
  /** Moves upstream's tags to new content (`n` names it) and publishes it. */
  const publish = async (n: number) => {
    u.bump(n);
    await ok(['apply'], { root: join(up, 'store'), cwd: up });
  };
  await publish(1);
  return { reg, mine, publish };
}

const baseOf = (ref: string) => remoteManifest<{ annotations?: Record<string, string> }>(ref).annotations?.['dev.dimg.base-digest'];
const pinned = (dir: string) => Object.values((JSON.parse(readFileSync(join(dir, 'images.lock'), 'utf8')) as { bases: Record<string, { digest: string }> }).bases).map((e) => e.digest);

test('a frozen lock builds on its pins after upstream retags; lock keeps pins, --update moves them; an unpinned base fails', async (t) => {
  const { reg, mine, publish } = await published(t);
  const d1 = remoteDigest(`${reg.host}/lib/base:1`);

  app(mine, reg.host);
  const opts = { root: join(mine, 'store'), cwd: mine };
  await ok(['lock'], opts);
  assert.deepEqual(pinned(mine), [d1]);

  // Upstream moves base:1.
  await publish(2);
  const d2 = remoteDigest(`${reg.host}/lib/base:1`);
  assert.notEqual(d2, d1);

  // Frozen: exactly the pinned digest, no failure.
  const frozen = await dimg(['apply', '--frozen-lock'], opts);
  assert.equal(frozen.code, 0, frozen.stdout + frozen.stderr);
  assert.equal(baseOf(`${reg.host}/shop/app:1`), d1, 'the image was built on the pinned base');

  // `dimg lock` keeps the pin; `--update app` moves it.
  const again = await ok(['lock'], opts);
  assert.match(again.stdout, /unchanged/);
  assert.deepEqual(pinned(mine), [d1]);
  const typo = await dimg(['lock', 'images.yaml', '--update', 'ap'], opts);
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /has no image "ap"; did you mean "app"\?/);
  const updated = await ok(['lock', 'images.yaml', '--update', 'app'], opts);
  assert.match(updated.stdout, /1 pin moved/);
  assert.deepEqual(pinned(mine), [d2]);

  // A base the lock does not pin: a frozen plan fails naming it.
  app(mine, reg.host, `  other:
    from: ${reg.host}/lib/base:2
    repository: shop/other
    tags: ["1"]
    push: [r]
`);
  const missing = await dimg(['plan', '--frozen-lock'], opts);
  assert.equal(missing.code, 1, missing.stdout + missing.stderr);
  assert.match(missing.stderr, new RegExp(`base ${reg.host.replace(/[.]/g, '\\.')}/lib/base:2 \\(linux/\\w+\\) is not pinned in .*images\\.lock`));
  await ok(['lock'], opts);
  assert.equal(pinned(mine).length, 2);
  const plan = await dimg(['plan', '--frozen-lock'], opts);
  assert.equal(plan.code, 0, plan.stderr);
});

test('a dimg lock killed while it resolves leaves the committed images.lock in place', async (t) => {
  const { reg, mine } = await published(t);
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  app(mine, proxy.host);
  const opts = { root: join(mine, 'store'), cwd: mine };
  await ok(['lock'], opts);
  const committed = readFileSync(join(mine, 'images.lock'));

  // Every manifest request now hangs; the lock run is killed while it waits.
  proxy.inject({ kind: 'stall', ms: 30_000, rate: 1, match: (_m, path) => path.includes('/manifests/') });
  const child = spawn(process.execPath, [DIMG_BIN, 'lock', '--update'], { cwd: mine, env: { ...process.env, DIMG_ROOT: opts.root }, stdio: 'ignore' });
  const exited = new Promise((r) => child.on('exit', r));
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(proxy.fired.stall! >= 1, 'the lock run reached the registry');
  child.kill('SIGKILL');
  await exited;
  assert.ok(existsSync(join(mine, 'images.lock')), 'images.lock was removed');
  assert.deepEqual(readFileSync(join(mine, 'images.lock')), committed);
});
