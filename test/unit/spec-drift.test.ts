/**
 * The schema is the source of truth for field names; these tests fail when the TypeScript side
 * (raw input types, step kinds, normaliser) and the schema disagree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { specSchema } from '../../src/specfile/schema-asset.js';
import { schemaIssues } from '../../src/specfile/schema-check.js';
import { STEP_KINDS } from '../../src/specfile/model.js';
import { SPEC_KEYS, DEFAULTS_KEYS, REGISTRY_KEYS, IMAGE_KEYS, STEP_OPTION_KEYS } from '../../src/specfile/raw.js';
import { stepFromYaml, canonicalStepJson } from '../../src/specfile/steps.js';
import { loadSpec } from '../../src/specfile/index.js';
import { nodeSpecPorts } from '../../src/specfile/node-ports.js';
import { REPO_ROOT } from '../support/cli.js';

type S = { properties?: Record<string, unknown>; definitions?: Record<string, S>; oneOf?: { required: string[] }[]; allOf?: { if?: { required: string[] }; then?: { $ref: string } }[] };
const schema = specSchema() as S;
const defs = schema.definitions!;
const keys = (o: object) => Object.keys(o).sort();

test('top level, defaults, registry and image members: schema == TypeScript types', () => {
  assert.deepEqual(keys(schema.properties!), keys(SPEC_KEYS));
  assert.deepEqual(keys(defs.defaults!.properties!), keys(DEFAULTS_KEYS));
  assert.deepEqual(keys(defs.registry!.properties!), keys(REGISTRY_KEYS));
  assert.deepEqual(keys(defs.image!.properties!), keys(IMAGE_KEYS));
});

test('step kinds and their options: schema == model == normaliser', () => {
  const kinds = defs.stepKind!.oneOf!.map((o) => o.required[0]);
  assert.deepEqual(kinds, [...STEP_KINDS]);
  const dispatched = defs.step!.allOf!.filter((a) => a.if).map((a) => [a.if!.required[0], a.then!.$ref]);
  assert.deepEqual(dispatched, STEP_KINDS.map((k) => [k, `#/definitions/${k}Step`]));
  for (const k of STEP_KINDS) {
    const props = keys(defs[`${k}Step`]!.properties!);
    assert.deepEqual(props, [k, ...STEP_OPTION_KEYS[k]].sort(), `${k} step options`);
  }
});

test('every step kind of the schema is normalised (a sample of each validates and normalises)', () => {
  const samples: Record<string, unknown>[] = [
    { run: 'make', env: { A: 1 }, network: 'host', secrets: [{ id: 'npm', src: 'npmrc', target: '/root/.npmrc', required: false }] },
    { copy: ['a', 'b'], to: '/x/', chown: 1000, chmod: '755', from: 'other' },
    { add: 'a.tar', to: '/', chown: 'app:app', chmod: 644 },
    { env: { A: 'b' } },
    { workdir: '/w' },
    { user: 1000 },
    { label: { a: 'b' } },
    { expose: ['53/udp', 8080] },
    { volume: '/data' },
    { shell: ['/bin/bash', '-c'] },
    { stopsignal: 'SIGINT' },
    { healthcheck: { test: 'true', interval: '1m30s', timeout: '500ms', startPeriod: '1s', startInterval: '2s', retries: 2 } },
  ];
  assert.deepEqual(samples.map((s) => Object.keys(s)[0]), [...STEP_KINDS], 'one sample per kind');
  const doc = { version: 1, images: { a: { from: 'scratch', steps: samples }, other: { from: 'scratch' } } };
  assert.deepEqual(schemaIssues(doc), []);
  for (const raw of samples) {
    const r = stepFromYaml(raw, { specDir: '/spec', resolveFrom: (n) => ({ kind: 'image', key: n }) });
    assert.ok('step' in r, JSON.stringify(raw));
    assert.equal(r.step.kind, Object.keys(raw)[0]);
    assert.doesNotThrow(() => canonicalStepJson(r.step));
  }
  const hc = stepFromYaml(samples[11]!, { specDir: '/', resolveFrom: () => undefined });
  assert.ok('step' in hc && hc.step.kind === 'healthcheck' && hc.step.interval === 90e9 && hc.step.timeout === 500e6);
});

test('every example round-trips: schema-valid as parsed, and each declared image and step lands in the model', async () => {
  const dirs = readdirSync(join(REPO_ROOT, 'examples')).filter((d) => readdirSync(join(REPO_ROOT, 'examples', d)).includes('images.yaml'));
  const files = ['images.yaml', ...dirs.map((d) => `examples/${d}/images.yaml`)];
  for (const f of files) {
    const raw = parse(readFileSync(join(REPO_ROOT, f), 'utf8')) as { images: Record<string, { steps?: unknown[]; tags?: unknown[] }> };
    assert.deepEqual(schemaIssues(raw), [], f);
    const spec = await loadSpec(f, nodeSpecPorts({ cwd: REPO_ROOT, git: async () => ({ sha: 'a'.repeat(40), short: 'aaaaaaa' }) }));
    const declared = spec.images.filter((i) => !i.intermediate);
    assert.deepEqual(declared.map((i) => i.key).sort(), Object.keys(raw.images).sort(), f);
    for (const img of declared) {
      const r = raw.images[img.key]!;
      if (r.steps) assert.equal(img.steps.length, r.steps.length, `${f} ${img.key} steps`);
      assert.equal(img.tags.length, r.tags?.length ?? 1, `${f} ${img.key} tags`);
    }
  }
});

test('pure spec modules touch neither the disk nor the process (only node-ports.ts and the schema asset do)', () => {
  const dir = join(REPO_ROOT, 'src/specfile');
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts') && n !== 'node-ports.ts' && n !== 'schema-asset.ts')) {
    const src = readFileSync(join(dir, f), 'utf8');
    assert.doesNotMatch(src, /from 'node:(fs|fs\/promises|child_process|os|process)'/, f);
    assert.doesNotMatch(src, /\bprocess\.(env|cwd|exit|platform|arch)\b/, f);
    assert.doesNotMatch(src, /\bnew Date\(\)|Date\.now\(\)/, f);
  }
});
