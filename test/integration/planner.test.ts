/**
 * The one Planner: `dimg plan` (one `plan` call) and a watch cycle (`resolve`, then `plan` reusing the
 * resolution, with watch's scope) make the same actions for the same spec and the same store and
 * registry state. Checked on a fresh state, after applying, and after an input changed; and watch's
 * scope drops exactly the release tag it must not write. A build-only plan (`dimg build`) goes
 * through the same planner with the same keys, and asks no registry.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Planner, type PlanOptions } from '../../src/exec/planner.js';
import { applyPlan } from '../../src/exec/apply.js';
import { executeBuildPlan } from '../../src/exec/build-plan.js';
import { isDimgError } from '../../src/errors.js';
import { loadSpec } from '../../src/specfile/load.js';
import { nodeSpecPorts } from '../../src/specfile/node-ports.js';
import type { Spec } from '../../src/specfile/model.js';
import type { Action } from '../../src/plan/types.js';
import { Store } from '../../src/store/store.js';
import { storeOptions } from '../../src/store/defaults.js';
import { startRegistry } from '../support/registry.js';
import { tempDir } from '../support/tmp.js';

const WATCH: PlanOptions = { watch: { push: ['dev'] } };

function specText(host: string, tags: string[]): string {
  return `version: 1
project: planner-test
registries:
  dev: { url: ${host}, insecure: true }
images:
  base:
    from: { rootfs: ./rootfs }
  web:
    from: base
    context: ./web
    steps:
      - copy: index.html
        to: /srv/
    repository: p/web
    tags: ${JSON.stringify(tags)}
    push: [dev]
    watchTags: [dev]
`;
}

/** The actions in id order, so two plans compare by what they would do and why. */
function actionsOf(actions: readonly Action[]): Action[] {
  return [...actions].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** What `dimg plan` plans and what a watch cycle plans, through the same planner. */
async function bothPlans(planner: Planner, spec: Spec): Promise<{ plan: Action[]; watch: Action[] }> {
  const plan = (await planner.plan(spec)).plan.actions;
  const resolution = await planner.resolve(spec, WATCH);
  const watch = (await planner.plan(spec, { ...WATCH, resolution })).plan.actions;
  return { plan: actionsOf(plan), watch: actionsOf(watch) };
}

/** A temp project: the rootfs and web context the spec of `specText` names; the spec file is not written yet. */
function projectDir(t: TestContext): { dir: string; specFile: string } {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'rootfs', 'etc'), { recursive: true });
  writeFileSync(join(dir, 'rootfs', 'etc', 'hostname'), 'planner\n');
  mkdirSync(join(dir, 'web'));
  writeFileSync(join(dir, 'web', 'index.html'), '<h1>one</h1>\n');
  return { dir, specFile: join(dir, 'images.yaml') };
}

test('planner: plan and a watch cycle make the same actions for the same spec and state', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const { dir, specFile } = projectDir(t);
  writeFileSync(specFile, specText(reg.host, ['dev']));
  const store = await Store.open(join(dir, 'store'), storeOptions());
  const load = () => loadSpec(specFile, nodeSpecPorts({ env: {} }));
  const spec = await load();
  const planner = await Planner.forSpec(spec, { store, env: {} });
  t.after(() => planner.close());

  // A fresh store and registry: everything is built and pushed.
  const fresh = await bothPlans(planner, spec);
  assert.deepEqual(fresh.plan.map((a) => `${a.kind} ${a.id}`).sort(), ['build build:base', 'build build:web', `push push:web:dev:${reg.host}/p/web:dev`].sort());
  assert.deepEqual(fresh.watch, fresh.plan);

  // Applied: both see nothing to do.
  const session = await planner.plan(spec);
  const result = await applyPlan(session, session.plan);
  assert.deepEqual(result.failed, []);
  const converged = await bothPlans(planner, spec);
  assert.ok(converged.plan.every((a) => a.kind === 'unchanged'), JSON.stringify(converged.plan));
  assert.deepEqual(converged.watch, converged.plan);

  // An input changed: both rebuild web (not base) and push it again.
  writeFileSync(join(dir, 'web', 'index.html'), '<h1>two</h1>\n');
  const edited = await bothPlans(planner, spec);
  assert.deepEqual(edited.plan.filter((a) => a.kind === 'build').map((a) => a.id), ['build:web']);
  assert.deepEqual(edited.watch, edited.plan);

  // A release tag is planned by `dimg plan` only: watch's scope drops that one push and nothing else.
  writeFileSync(specFile, specText(reg.host, ['dev', '1.0']));
  const released = await load();
  const both = await bothPlans(planner, released);
  const release = `push:web:dev:${reg.host}/p/web:1.0`;
  assert.ok(both.plan.some((a) => a.id === release), 'plan pushes the release tag');
  assert.deepEqual(both.watch, both.plan.filter((a) => a.id !== release));
});

test('planner: a build-only plan builds what is asked and needed, asks no registry, keys as a full plan', async (t) => {
  const { dir, specFile } = projectDir(t);
  // Port 1 refuses connections: any registry read would fail the plan with REGISTRY_UNREACHABLE.
  const offline = '127.0.0.1:1';
  writeFileSync(specFile, `${specText(offline, ['dev'])}  remote:\n    from: ${offline}/nothing/here:1\n`);
  const spec = await loadSpec(specFile, nodeSpecPorts({ env: {} }));
  const store = await Store.open(join(dir, 'store'), storeOptions());
  const planner = await Planner.forBuild(store);
  t.after(() => planner.close());
  const buildOnly = (images: string[]) => planner.plan(spec, { buildOnly: { images } });

  const session = await buildOnly(['web']);
  const shape = (a: Action) => `${a.id} <- ${a.dependsOn.join(',')} (${a.kind === 'build' ? a.reason : a.kind})`;
  const expected = ['build:base <-  (requested)', 'build:web <- build:base (requested)'];
  assert.deepEqual(session.plan.actions.map(shape), expected);
  // The same key function as a full plan (resolve observes nothing; `remote` is left out, as its base
  // is what a full resolve would ask the registry for).
  const full = await Planner.forSpec(spec, { store, env: {} });
  t.after(() => full.close());
  const local = { ...spec, images: spec.images.filter((i) => i.key !== 'remote') };
  const planned = (await full.resolve(local)).resolved.desired.images;
  const input = (key: string) => planned.find((i) => i.key === key)?.inputDigest;
  for (const a of session.plan.actions) {
    assert.ok(a.kind === 'build');
    assert.equal(a.inputDigest, input(a.image), a.id);
  }

  // base has no steps, so nothing of it runs; web's copy does.
  const built = await executeBuildPlan(session);
  const outcome = built.map((b) => [b.key, b.inputDigest, b.cached]);
  assert.deepEqual(outcome, [['base', input('base'), true], ['web', input('web'), false]]);
  // Planned again with everything in the store: still built (every step cached), as `dimg build` does.
  const again = await executeBuildPlan(await buildOnly(['web']));
  const same = built.map((b) => [b.key, b.descriptor.digest, true]);
  assert.deepEqual(again.map((b) => [b.key, b.descriptor.digest, b.cached]), same);

  // A registry base missing from the store fails planning with the pull to run; no registry is asked.
  await assert.rejects(buildOnly(['remote']), (e: unknown) => {
    return isDimgError(e, 'IMAGE_NOT_FOUND') && e.hint === `pull it first: dimg image pull ${offline}/nothing/here:1`;
  });
  await assert.rejects(buildOnly(['nope']), (e: unknown) => isDimgError(e, 'IMAGE_NOT_IN_SPEC'));
});
