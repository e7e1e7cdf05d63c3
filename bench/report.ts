/**
 * Targets of issue 8 and the rendering of a bench run: the markdown table (dimg, each peer, dimg / best
 * peer, target, pass/miss), the JSON kept in bench/results/latest.json, and the generated section of
 * docs/benchmarks.md (between the `bench-results` markers).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Machine } from './env.js';
import type { CaseResult, ToolResult } from './runner.js';

/** A target: a ratio dimg / best of `peers`, or an absolute bound on dimg's median. */
export type Target =
  | { kind: 'ratio'; max: number; peers: string[]; source: string }
  /** `worst: true` judges the largest sample instead of the median (a memory ceiling must hold every run). */
  | { kind: 'abs'; max: number; unit: string; source: string; worst?: boolean };

/** Targets by case id (issue 8, plus issue 3 for the already-pushed push and issue 7 for watch). */
export const TARGETS: Record<string, Target> = {
  'build-cold': { kind: 'ratio', max: 0.8, peers: ['docker', 'buildah'], source: 'issue 8/5' },
  'build-cached': { kind: 'ratio', max: 0.5, peers: ['docker', 'buildah'], source: 'issue 8/5' },
  'build-changed': { kind: 'ratio', max: 0.7, peers: ['docker', 'buildah'], source: 'issue 8/5' },
  // "well under BuildKit's one-file-change rebuild", read as at most half of it
  'watch-ref': { kind: 'ratio', max: 0.5, peers: ['docker'], source: 'issue 7' },
  'watch-copy': { kind: 'abs', max: 0.5, unit: 's', source: 'issue 7' },
  'push-cold': { kind: 'ratio', max: 0.6, peers: ['docker'], source: 'issue 8' },
  'push-warm': { kind: 'ratio', max: 1.0, peers: ['docker'], source: 'issue 3' },
  copy: { kind: 'ratio', max: 1.0, peers: ['skopeo'], source: 'issue 8/3' },
  save: { kind: 'ratio', max: 1.0, peers: ['docker'], source: 'issue 8' },
  load: { kind: 'ratio', max: 0.5, peers: ['docker'], source: 'issue 8' },
  'noop-200': { kind: 'abs', max: 3, unit: 's', source: 'issue 8/6' },
  'rss-push': { kind: 'abs', max: 200, unit: 'MiB', source: 'issue 8/3', worst: true },
};

/** A case with its verdict. */
export interface Judged extends CaseResult {
  target?: Target;
  ratio?: number;
  bestPeer?: string;
  verdict: 'pass' | 'miss' | 'n/a';
}

const isDimg = (t: ToolResult) => t.tool.startsWith('dimg');

/** Applies the targets to the results. */
export function judge(cases: CaseResult[]): Judged[] {
  return cases.map((c) => {
    const target = TARGETS[c.id];
    const dimg = c.tools.filter(isDimg);
    if (!target || dimg.some((t) => !t.stats)) return { ...c, target, verdict: 'n/a' as const };
    if (target.kind === 'abs') {
      const worst = Math.max(...dimg.map((t) => (target.worst ? t.stats!.max : t.stats!.median)));
      return { ...c, target, verdict: worst < target.max ? ('pass' as const) : ('miss' as const) };
    }
    const peers = c.tools.filter((t) => target.peers.includes(t.tool) && t.stats);
    if (peers.length === 0) return { ...c, target, verdict: 'n/a' as const };
    const best = peers.reduce((a, p) => (p.stats!.median < a.stats!.median ? p : a));
    const ratio = dimg[0]!.stats!.median / best.stats!.median;
    return { ...c, target, ratio, bestPeer: best.tool, verdict: ratio <= target.max ? ('pass' as const) : ('miss' as const) };
  });
}

function cell(t: ToolResult | undefined, unit: string): string {
  if (!t) return '';
  if (!t.stats) return `skipped: ${t.skipped ?? 'no result'}`;
  const d = unit === 'MiB' ? 0 : 2;
  return `${t.stats.median.toFixed(d)} (${t.stats.min.toFixed(d)}–${t.stats.max.toFixed(d)})`;
}

const PEERS = ['docker', 'buildah', 'skopeo'];

/** The results table in markdown. */
export function table(cases: Judged[]): string {
  const rows = ['| workload | dimg | docker | buildah | skopeo | dimg / best peer | target | result |', '|---|---|---|---|---|---|---|---|'];
  for (const c of cases) {
    const dimg = c.tools.filter(isDimg);
    const dimgCell = dimg.length === 1 ? cell(dimg[0], c.unit) : dimg.map((t) => `${t.tool.replace('dimg ', '')} ${cell(t, c.unit)}`).join('<br>');
    const peers = PEERS.map((p) => cell(c.tools.find((t) => t.tool === p), c.unit));
    const ratio = c.ratio !== undefined ? `${c.ratio.toFixed(2)} (vs ${c.bestPeer})` : '';
    const target = !c.target
      ? ''
      : c.target.kind === 'ratio'
        ? `≤ ${c.target.max} × ${c.target.peers.join('/')}`
        : `${c.target.worst ? 'every run ' : ''}< ${c.target.max} ${c.target.unit}`;
    rows.push(`| ${c.title} (${c.unit}) | ${dimgCell} | ${peers.join(' | ')} | ${ratio} | ${target} | ${c.verdict} |`);
  }
  return rows.join('\n');
}

/** Growth of the no-op plan/apply times with the number of tags, as a sentence. */
export function planGrowth(cases: Judged[]): string | null {
  const noop = cases.filter((c) => c.id.startsWith('noop-'));
  if (noop.length < 2) return null;
  const parts = ['dimg plan', 'dimg apply'].map((tool) => {
    const pts = noop.map((c) => ({ n: Number(c.id.slice(5)), s: c.tools.find((t) => t.tool === tool)?.stats?.median })).filter((p) => p.s !== undefined);
    const per = pts.map((p) => `${p.n}×3: ${p.s!.toFixed(2)} s (${((p.s! / (p.n * 3)) * 1000).toFixed(1)} ms/tag)`);
    return `${tool}: ${per.join(', ')}`;
  });
  return `No-op growth — ${parts.join('; ')}.`;
}

/** Everything a run records. */
export interface RunRecord {
  date: string;
  machine: Machine;
  load: { start: string; end: string; samples: string[] };
  options: Record<string, unknown>;
  /** The commit the compiled dimg came from, and how many tracked files differed from it. */
  source: { commit: string; dirtyFiles: number };
  /** Other dockerd benchmarks seen running during the run (they skew the peers' figures). */
  concurrentBenches?: string[];
  command: string;
  cases: Judged[];
}

/** Writes `data` to `file` atomically (temp file + rename). */
export function writeJson(file: string, data: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, `${JSON.stringify(data, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

/** The markdown section describing a run (table, machine, load, notes). */
export function section(r: RunRecord): string {
  const m = r.machine;
  const lines = [
    `Run of ${r.date} on ${m.nproc} cores (${m.cpuModel}), ${m.memoryGiB} GiB memory, Linux ${m.kernel}, Node ${m.node}.`,
    `Load average (1/5/15 min) at start ${r.load.start}, at end ${r.load.end}; during the cases: ${r.load.samples.join(' → ')}.`,
    `Each figure: median (min–max) of ${String(r.options.runs)} runs, tools alternating run by run. Command: \`${r.command}\`; dimg built from ${r.source.commit}${r.source.dirtyFiles ? ` plus ${r.source.dirtyFiles} files changed in the work tree` : ''}.`,
    ...(r.concurrentBenches?.length ? [`**Warning:** other benchmarks using dockerd ran during this run (${r.concurrentBenches.join('; ')}); Docker's figures may be skewed.`] : []),
    '',
    table(r.cases),
    '',
  ];
  const g = planGrowth(r.cases);
  if (g) lines.push(g, '');
  const notes = r.cases.flatMap((c) => c.notes.map((n) => `- ${c.title}: ${n}`));
  const skips = r.cases.flatMap((c) => c.tools.filter((t) => t.skipped).map((t) => `- ${c.title}: ${t.tool} skipped — ${t.skipped}`));
  if (notes.length + skips.length > 0) lines.push(...notes, ...skips, '');
  return lines.join('\n');
}

const BEGIN = '<!-- bench-results:begin (written by npm run bench) -->';
const END = '<!-- bench-results:end -->';

/** Replaces the generated section of the docs file (appending the markers when absent). */
export function updateDocs(file: string, r: RunRecord): void {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n\n';
  const body = `${BEGIN}\n${section(r)}${END}`;
  const i = text.indexOf(BEGIN);
  const j = text.indexOf(END);
  const next = i >= 0 && j > i ? text.slice(0, i) + body + text.slice(j + END.length) : `${text.trimEnd()}\n\n## Latest results\n\n${body}\n`;
  writeFileSync(`${file}.tmp`, next);
  renameSync(`${file}.tmp`, file);
}
