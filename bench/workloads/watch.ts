/**
 * Workload "watch": edit-to-ready latency of a running `dimg watch` (issue 7), side by side with
 * BuildKit's one-file-change rebuild of the same reference workload.
 *
 * One `dimg watch` process runs for the whole case on a spec holding two images: `app`, the reference
 * workload as an images.yaml image (the very spec createReferenceWorkload writes next to the
 * Dockerfile, its context pointed at the workload), and `site`, a COPY-only image (one small context
 * directory copied onto the base). After the first cycle is ready, rounds alternate:
 *   1. dimg, reference: rewrite one small context file (changeOneFile, the build workload's edit) and
 *      time from just before the write to the watch printing `ready in …` for the cycle rebuilding app;
 *   2. docker: the one-file-change `docker build` exactly as the build workload runs it (its
 *      preparation makes the same edit; the watch's cycle for that edit finishes, untimed, before
 *      Docker starts, so the two never run at once);
 *   3. dimg, COPY-only: rewrite site/index.html and time to the cycle's `ready`.
 * Each dimg figure is given twice: from the bench's own write timestamp to the moment the `ready` line
 * arrives, and the latency watch itself prints (measured from the first file event of the burst).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { changeOneFile, stats } from '../build-workload.js';
import { copyStore, dimgArgv, workPath, type Bench } from '../context.js';
import { loadNow } from '../env.js';
import { alternate, once, type CaseResult, type Entrant, type ToolResult } from '../runner.js';
import { baseTemplate, buildEntrants } from './build.js';

const log = (s: string) => process.stderr.write(`${s}\n`);

/** Longest a cycle may take before the case fails (a cold first cycle of the reference workload included). */
const CYCLE_TIMEOUT_MS = 180_000;

/** A `ready in …` line of the watch output and when it arrived. */
interface Ready {
  /** performance.now() when the line was read from the pipe. */
  at: number;
  /** The latency watch printed, in seconds. */
  printed: number;
  /** Output of the cycle (stdout and stderr since the previous ready). */
  text: string;
}

/** A running `dimg watch --progress plain`, its output split into cycles. */
class WatchProcess {
  readonly child: ChildProcess;
  readonly readies: Ready[] = [];
  all = '';
  private cycle = '';
  private partial = '';
  private failure: string | undefined;
  private wake: (() => void) | undefined;
  readonly exited: Promise<number | null>;

  constructor(argv: string[], cwd: string) {
    this.child = spawn(argv[0]!, argv.slice(1), { cwd, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => this.onData(d.toString('utf8')));
    this.child.stderr!.on('data', (d: Buffer) => this.onData(d.toString('utf8'), true));
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code) => {
        this.wake?.();
        resolve(code);
      }),
    );
  }

  private onData(s: string, stderr = false): void {
    const at = performance.now();
    this.all += s;
    if (stderr) {
      this.cycle += s;
      // An error ends a cycle without a `ready`: fail the wait at once instead of timing out.
      if (/^(\d\d:\d\d:\d\d )?error: /m.test(s)) this.failure = `dimg watch reported an error:\n${s.trim()}`;
      this.wake?.();
      return;
    }
    const lines = (this.partial + s).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      this.cycle += `${line}\n`;
      const m = /ready in (\d+\.\d+)s/.exec(line);
      if (m) {
        this.readies.push({ at, printed: Number(m[1]), text: this.cycle });
        this.cycle = '';
      }
    }
    this.wake?.();
  }

  /** Resolves with the ready after the first `count` ones; fails on an error, an exit, or after the timeout. */
  async readyAfter(count: number): Promise<Ready> {
    const deadline = performance.now() + CYCLE_TIMEOUT_MS;
    for (;;) {
      if (this.readies.length > count) return this.readies[count]!;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`dimg watch exited (${this.child.exitCode ?? this.child.signalCode}):\n${this.all.slice(-3000)}`);
      if (this.failure) throw new Error(`${this.failure}\n--- output ---\n${this.all.slice(-3000)}`);
      if (performance.now() > deadline) throw new Error(`no "ready" from dimg watch within ${CYCLE_TIMEOUT_MS / 1000} s:\n${this.all.slice(-3000)}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 200);
      });
      this.wake = undefined;
    }
  }

  /** Makes `edit`, waits for its cycle, checks that it rebuilt `image`; returns the seconds from just before the edit. */
  async timeEdit(edit: () => void, image: string): Promise<{ seconds: number; printed: number }> {
    this.failure = undefined;
    const n = this.readies.length;
    const t0 = performance.now();
    edit();
    const r = await this.readyAfter(n);
    if (!new RegExp(`rebuild ${image}: `).test(r.text)) throw new Error(`the cycle after the edit did not rebuild ${image}:\n${r.text}`);
    return { seconds: (r.at - t0) / 1000, printed: r.printed };
  }

  /** SIGINT, then SIGKILL if it has not exited within 5 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGINT');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(t);
  }
}

/**
 * Writes the watch spec into `dir`: the reference workload's images.yaml image `app` (context: the
 * workload) plus the COPY-only image `site` (context `dir/site`), both FROM the reference base.
 */
function writeWatchSpec(b: Bench, dir: string): string {
  const ref = parse(readFileSync(join(b.workload, 'images.yaml'), 'utf8')) as { images: Record<string, Record<string, unknown>> };
  const app = ref.images.app!;
  app.context = b.workload;
  const site = join(dir, 'site');
  mkdirSync(site, { recursive: true });
  writeFileSync(join(site, 'index.html'), '<h1>bench</h1>\n');
  writeFileSync(join(site, 'style.css'), 'h1 { color: teal }\n');
  const spec = {
    ...ref,
    images: {
      app,
      site: { from: b.baseRef, context: './site', steps: [{ copy: ['index.html', 'style.css'], to: '/srv/' }], repository: 'bench-site', tags: ['y'] },
    },
  };
  const file = join(dir, 'images.yaml');
  writeFileSync(file, stringify(spec));
  return file;
}

/** Runs the watch workload: the two edit-to-ready cases (see the file comment). */
export async function watchCases(b: Bench): Promise<CaseResult[]> {
  log(`== watch: edit-to-ready (load ${loadNow()})`);
  const dir = workPath(b, 'watch');
  mkdirSync(dir, { recursive: true });
  const specFile = writeWatchSpec(b, dir);
  const store = workPath(b, 'stores', 'watch');
  copyStore(b, baseTemplate(b), store);

  const w = new WatchProcess(dimgArgv(b, store, 'watch', specFile, '--progress', 'plain'), dir);
  try {
    const first = await w.readyAfter(0);
    log(`  first cycle ready (${first.printed.toFixed(2)} s as printed, cold build of app and site)`);
    const printed = { ref: [] as number[], copy: [] as number[] };
    const ref: Entrant = {
      tool: 'dimg watch (write → ready)',
      argv: [],
      measure: async () => {
        const r = await w.timeEdit(() => changeOneFile(b.workload), 'app');
        printed.ref.push(r.printed);
        return r.seconds;
      },
    };
    const copy: Entrant = {
      tool: 'dimg watch COPY-only (write → ready)',
      argv: [],
      measure: async () => {
        const r = await w.timeEdit(() => writeFileSync(join(dir, 'site', 'index.html'), `<h1>${process.hrtime.bigint()}</h1>\n`), 'site');
        printed.copy.push(r.printed);
        return r.seconds;
      },
    };
    // Warm-up (untimed): one edit of each kind.
    await w.timeEdit(() => changeOneFile(b.workload), 'app');
    await w.timeEdit(() => writeFileSync(join(dir, 'site', 'index.html'), '<h1>warm</h1>\n'), 'site');

    const list: Entrant[] = [ref];
    const skipped: ToolResult[] = [];
    const docker = buildEntrants(b, 'changed');
    const d = docker.list.find((e) => e.tool === 'docker');
    if (d) {
      once(d); // Docker holds a build of the current files before its first timed run
      list.push({
        ...d,
        prepare: async () => {
          // The build workload's edit, and the watch's cycle for it, before Docker's clock starts.
          const n = w.readies.length;
          await d.prepare?.();
          await w.readyAfter(n);
        },
      });
    } else skipped.push(...docker.skipped.filter((s) => s.tool === 'docker'));
    list.push(copy);

    const before = loadNow();
    const tools = await alternate(list, b.opts.runs, skipped);
    const after = loadNow();
    const pick = (name: string) => tools.find((t) => t.tool === name)!;
    const asPrinted = (tool: string, xs: number[]): ToolResult => (xs.length > 0 ? { tool, stats: stats(xs) } : { tool, skipped: 'no cycle measured' });
    const notes = [`one dimg watch process for both cases; load ${before} → ${after}`];
    return [
      {
        id: 'watch-ref',
        title: 'watch: edit-to-ready, reference workload, one file changed',
        unit: 's',
        tools: [pick(ref.tool), asPrinted('dimg watch (as printed)', printed.ref), ...tools.filter((t) => t.tool === 'docker')],
        load: { before, after },
        notes: [...notes, 'docker: `docker build` of the one-file change (as in the build workload), run while the watch is idle'],
      },
      {
        id: 'watch-copy',
        title: 'watch: edit-to-ready, COPY-only image',
        unit: 's',
        tools: [pick(copy.tool), asPrinted('dimg watch COPY-only (as printed)', printed.copy)],
        load: { before, after },
        notes: ['image `site`: FROM the base, one COPY of two small files; the same watch process also watches the reference workload'],
      },
    ];
  } finally {
    await w.stop();
  }
}
