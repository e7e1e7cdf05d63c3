/**
 * Workload 7: no-op `dimg plan` and `dimg apply` for specs of N images × 3 tags × 1 registry (N = 50,
 * 100, 200 by default), everything up to date and the local store empty (a fresh CI runner). The
 * registry keeps its storage under the work directory between bench runs, on a fixed preferred port,
 * so the untimed setup apply (which builds and pushes all images once) is itself a no-op next time.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dimgArgv, workPath, type Bench } from '../context.js';
import { loadNow, startRegistry } from '../env.js';
import { alternate, once, type CaseResult } from '../runner.js';
import { baseTemplate } from './build.js';

const PLAN_PORT = 5077;

function writeSpec(dir: string, host: string, n: number): string {
  const lines = [
    'version: 1',
    'project: dimgbench-plan',
    'registries:',
    `  bench: { url: ${host}/plan, insecure: true }`,
    'defaults:',
    '  push: [bench]',
    'images:',
  ];
  for (let i = 0; i < n; i++) {
    const k = `img${String(i).padStart(3, '0')}`;
    lines.push(
      `  ${k}:`,
      `    from: "${host}/base/busybox:1"`,
      '    context: ./ctx',
      '    steps:',
      `      - copy: ${k}.txt`,
      '        to: /etc/bench/',
      `      - env: { IMAGE: ${k} }`,
      '    tags: ["1", "1.0", "latest"]',
    );
  }
  const file = join(dir, `images-${n}.yaml`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/** Runs the no-op plan/apply cases for every size in `--plan-sizes`. */
export async function planCases(b: Bench): Promise<CaseResult[]> {
  const reg = await startRegistry('plan', workPath(b, 'registries', 'plan'), false, PLAN_PORT);
  const dir = workPath(b, 'plan');
  mkdirSync(join(dir, 'ctx'), { recursive: true });
  const max = Math.max(...b.opts.planSizes);
  for (let i = 0; i < max; i++) {
    const f = join(dir, 'ctx', `img${String(i).padStart(3, '0')}.txt`);
    if (!existsSync(f)) writeFileSync(f, `image ${i}\n`);
  }
  const specs = new Map(b.opts.planSizes.map((n) => [n, writeSpec(dir, reg.host, n)]));
  // untimed setup: the base in the plan registry, then one apply of the largest spec
  once({ tool: 'dimg', argv: dimgArgv(b, baseTemplate(b), 'image', 'push', '-q', b.baseRef, `${reg.host}/base/busybox:1`) });
  process.stderr.write(`== plan: setup apply of ${max} images × 3 tags (a no-op when the registry kept its data)\n`);
  const setupStore = workPath(b, 'stores', 'plan-setup');
  once({ tool: 'dimg', argv: dimgArgv(b, setupStore, 'apply', specs.get(max)!, '--progress', 'plain'), cwd: dir });
  rmSync(setupStore, { recursive: true, force: true });
  const empty = workPath(b, 'stores', 'plan-empty');
  const out: CaseResult[] = [];
  const noChanges = (o: string) => (/No changes/.test(o) ? null : `expected "No changes", got: ${o.trim().split('\n').slice(0, 5).join(' / ')}`);
  for (const n of b.opts.planSizes) {
    process.stderr.write(`== plan/apply no-op, ${n} images × 3 tags, empty store (load ${loadNow()})\n`);
    const spec = specs.get(n)!;
    const fresh = () => rmSync(empty, { recursive: true, force: true });
    const before = loadNow();
    const tools = await alternate(
      [
        { tool: 'dimg plan', argv: dimgArgv(b, empty, 'plan', spec, '--detailed-exitcode'), cwd: dir, prepare: fresh, check: noChanges },
        { tool: 'dimg apply', argv: dimgArgv(b, empty, 'apply', spec, '--progress', 'plain'), cwd: dir, prepare: fresh, check: noChanges },
      ],
      b.opts.runs,
    );
    out.push({
      id: `noop-${n}`,
      title: `no-op plan/apply, ${n} images × 3 tags`,
      unit: 's',
      tools,
      load: { before, after: loadNow() },
      notes: [`${n * 3} tags in one registry (${reg.host}); local store emptied before every run`],
    });
  }
  return out;
}
