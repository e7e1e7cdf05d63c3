/**
 * Alternating timer for one bench case: every contender (dimg and its peers) runs once per round, in
 * turn, so machine noise hits them alike. Builds on build-workload.ts's `timeCommand` and `stats`, adding
 * what a whole-suite run needs: a failing peer is recorded as skipped with its error instead of aborting
 * the suite, and a run that fails because dockerd vanished restarts dockerd and is redone.
 */
import { spawnSync } from 'node:child_process';
import { stats, timeCommand, type Stats } from './build-workload.js';
import { DOCKER_ENV, dockerStillUp, loadNow } from './env.js';

/** One tool in a case: an untimed preparation and the timed command. */
export interface Entrant {
  /** Display name, e.g. `dimg`, `docker`, `buildah`, `skopeo`. */
  tool: string;
  argv: string[];
  prepare?: () => void | Promise<void>;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Talks to dockerd: a failure while dockerd is down is retried after restarting it. */
  docker?: boolean;
  /** Checked after each run (e.g. "the build really happened"); return an error text to fail the run. */
  check?: (output: string) => string | null;
  /**
   * Instead of running `argv`, measures one run itself and resolves to its seconds (a long-running
   * process such as `dimg watch`, timed from an edit to its "ready"); `check` and `env` are not used then.
   */
  measure?: () => Promise<number>;
}

/** A tool's outcome in one case: its statistics, or why it has none. */
export interface ToolResult {
  tool: string;
  stats?: Stats;
  skipped?: string;
  /** Extra figures (e.g. peak RSS), by name. */
  extra?: Record<string, number>;
}

/** The timed result of one case. */
export interface CaseResult {
  id: string;
  title: string;
  unit: 's' | 'MiB';
  tools: ToolResult[];
  load: { before: string; after: string };
  notes: string[];
}

const log = (s: string) => process.stderr.write(`${s}\n`);

/** Runs each entrant `runs` times, alternating; entrants that are already skipped are passed through. */
export async function alternate(entrants: Entrant[], runs: number, skipped: ToolResult[] = []): Promise<ToolResult[]> {
  const times = new Map<string, number[]>(entrants.map((e) => [e.tool, []]));
  const failed = new Map<string, string>();
  for (let i = 0; i < runs; i++) {
    for (const e of entrants) {
      if (failed.has(e.tool)) continue;
      let attempt = 0;
      for (;;) {
        try {
          await e.prepare?.();
          // Flush what the preparation wrote or deleted (a copied or removed store, a pruned builder
          // cache): otherwise its writeback lands in the timed run, whichever tool that is, and grows
          // run by run (a cold dimg build went 1.4 → 4.5 s over five runs, docker load 2.5 → 10.9 s).
          spawnSync('sync', { stdio: 'ignore' });
          let seconds: number;
          if (e.measure) seconds = await e.measure();
          else {
            const t = timeCommand(e.argv, { env: { ...process.env, ...(e.docker ? DOCKER_ENV : {}), ...e.env }, cwd: e.cwd });
            const bad = e.check?.(t.output);
            if (bad) throw new Error(bad);
            seconds = t.seconds;
          }
          times.get(e.tool)!.push(seconds);
          log(`  ${e.tool} run ${i + 1}/${runs}: ${seconds.toFixed(3)} s (load ${loadNow()})`);
          break;
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          if (e.docker && attempt === 0 && !dockerStillUp()) {
            attempt++;
            log(`  ${e.tool}: dockerd was down; redoing run ${i + 1}`);
            continue;
          }
          log(`  ${e.tool} FAILED: ${msg.slice(0, 1500)}`);
          failed.set(e.tool, msg.split('\n').filter(Boolean).slice(0, 3).join(' / ').slice(0, 300));
          break;
        }
      }
    }
  }
  const out: ToolResult[] = entrants.map((e) =>
    failed.has(e.tool) ? { tool: e.tool, skipped: `failed: ${failed.get(e.tool)}` } : { tool: e.tool, stats: stats(times.get(e.tool)!) },
  );
  return [...out, ...skipped];
}

/** Runs one entrant once, untimed (setup and warm-up); throws with its output on failure. */
export function once(e: Entrant): string {
  return timeCommand(e.argv, { env: { ...process.env, ...(e.docker ? DOCKER_ENV : {}), ...e.env }, cwd: e.cwd }).output;
}
