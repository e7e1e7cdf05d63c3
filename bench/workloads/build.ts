/**
 * Workloads 1–3: cold build, fully cached rebuild, one-small-file-changed rebuild of the reference
 * workload (build-workload.ts), dimg `image build` against `docker build` (BuildKit, --network=none)
 * and `buildah bud --layers --runtime runc` (storage under the work directory).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { changeOneFile, createReferenceWorkload, makeBaseStore } from '../build-workload.js';
import { copyStore, dimgArgv, isStore, workPath, type Bench } from '../context.js';
import { DOCKER, loadNow, sh } from '../env.js';
import { alternate, once, type CaseResult, type Entrant, type ToolResult } from '../runner.js';

/** Path of the dimg store the builds use. */
export function buildStore(b: Bench): string {
  return workPath(b, 'stores', 'build');
}

/** The store template holding the base image, its layer unpacked (made once, kept in the work directory). */
export function baseTemplate(b: Bench): string {
  const t = workPath(b, b.baseFromRegistry ? 'store-base-registry' : 'store-base-import');
  makeBaseStore(b.dimg, t, b.opts.work, b.baseFromRegistry);
  // Parity with the peers, whose base image is pulled and unpacked before a cold build: a throw-away
  // build on the base makes dimg unpack the base layer into the template once (not for the smoke case).
  const marker = `${t}.base-unpacked`;
  if (!b.opts.tiny && !existsSync(marker)) {
    const dir = workPath(b, 'base-warmup');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${b.baseRef}\nRUN true\n`);
    once({ tool: 'dimg', argv: dimgArgv(b, t, 'image', 'build', '-t', 'dimgbench/base-warmup:1', dir) });
    writeFileSync(marker, `${new Date().toISOString()}\n`);
  }
  return t;
}

/**
 * Writes the build context: the reference workload, or for --tiny a context of 40 small files and a
 * 1 MiB `big.bin` (createReferenceWorkload keeps an existing context and writes the build files).
 */
export function prepareWorkload(b: Bench): void {
  if (b.opts.tiny && !existsSync(join(b.workload, 'ctx', 'big.bin'))) {
    for (let i = 0; i < 40; i++) {
      const d = join(b.workload, 'ctx', `d${String(Math.floor(i / 20)).padStart(2, '0')}`);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, `f${String(i).padStart(4, '0')}.txt`), `file ${i}\n`.repeat(20));
    }
    writeFileSync(join(b.workload, 'ctx', 'big.bin'), Buffer.alloc(1 << 20, 7));
  }
  createReferenceWorkload(b.workload, b.baseRef);
}

function buildahGlobal(b: Bench): string[] {
  return ['buildah', '--root', workPath(b, 'buildah', 'root'), '--runroot', workPath(b, 'buildah', 'run'), '--storage-driver', 'overlay'];
}

/**
 * The build entrants (dimg, and Docker and buildah when usable) for one kind of case, with the peers
 * that cannot run listed as skipped; `cold` gives each a preparation that empties its cache, `changed`
 * one that rewrites one small context file (changeOneFile).
 */
export function buildEntrants(b: Bench, kind: 'cold' | 'cached' | 'changed'): { list: Entrant[]; skipped: ToolResult[] } {
  const store = buildStore(b);
  const base = kind === 'cold' ? baseTemplate(b) : '';
  const change = kind === 'changed' ? () => changeOneFile(b.workload) : undefined;
  const list: Entrant[] = [
    {
      tool: 'dimg',
      argv: dimgArgv(b, store, 'image', 'build', '-f', 'Dockerfile', '-t', b.appName, '.'),
      cwd: b.workload,
      prepare: kind === 'cold' ? () => copyStore(b, base, store) : change,
    },
  ];
  const skipped: ToolResult[] = [];
  if (!b.opts.peers) return { list, skipped };
  if (b.peers.docker === null) {
    list.push({
      tool: 'docker',
      argv: [DOCKER, 'build', '-q', '--network=none', '-t', b.appName, '.'],
      cwd: b.workload,
      docker: true,
      prepare:
        kind === 'cold'
          ? () => {
              sh(`${DOCKER} image inspect -f '{{.Id}}' ${b.appName} 2>/dev/null | xargs -r ${DOCKER} rmi -f >/dev/null 2>&1; ${DOCKER} builder prune -af >/dev/null 2>&1`);
              sh(`${DOCKER} pull -q ${b.baseRef} >/dev/null 2>&1`);
            }
          : change,
    });
  } else skipped.push({ tool: 'docker', skipped: b.peers.docker });
  if (b.peers.buildah === null) {
    const g = buildahGlobal(b).join(' ');
    list.push({
      tool: 'buildah',
      argv: [...buildahGlobal(b), 'bud', '-q', '--runtime', 'runc', '--layers', '--network=none', '--tls-verify=false', '-t', `${b.appName}-buildah`, '.'],
      cwd: b.workload,
      prepare:
        kind === 'cold'
          ? () => {
              sh(`${g} rm -a >/dev/null 2>&1; ${g} rmi -af >/dev/null 2>&1`);
              sh(`${g} pull -q --tls-verify=false ${b.baseRef} >/dev/null 2>&1`);
            }
          : change,
    });
  } else skipped.push({ tool: 'buildah', skipped: b.peers.buildah });
  return { list, skipped };
}

const TITLES = { cold: 'cold build', cached: 'fully cached rebuild', changed: 'one-file-change rebuild' } as const;

/** Runs the three build cases (each tool alternating) and returns their results. */
export async function buildCases(b: Bench): Promise<CaseResult[]> {
  const out: CaseResult[] = [];
  for (const kind of ['cold', 'cached', 'changed'] as const) {
    process.stderr.write(`== build: ${TITLES[kind]} (load ${loadNow()})\n`);
    const { list, skipped } = buildEntrants(b, kind);
    if (kind !== 'cold') {
      // each tool must hold a complete build of the current files before a cached/changed run
      for (const e of list) {
        if (e.tool === 'dimg' && !isStore(buildStore(b))) copyStore(b, baseTemplate(b), buildStore(b));
        once(e);
      }
    }
    const before = loadNow();
    const tools = await alternate(list, b.opts.runs, skipped);
    for (const t of tools) if (t.stats) b.built[t.tool as 'dimg' | 'docker' | 'buildah'] = true;
    out.push({ id: `build-${kind}`, title: TITLES[kind], unit: 's', tools, load: { before, after: loadNow() }, notes: [] });
  }
  return out;
}

/** Makes sure dimg's build store (and Docker, when it is a peer) hold a built app image: untimed. */
export function ensureBuilt(b: Bench, docker: boolean): void {
  if (!b.built.dimg) {
    if (!isStore(buildStore(b))) copyStore(b, baseTemplate(b), buildStore(b));
    once(buildEntrants(b, 'cached').list[0]!);
    b.built.dimg = true;
  }
  if (docker && b.opts.peers && b.peers.docker === null && !b.built.docker) {
    const e = buildEntrants(b, 'cached').list.find((x) => x.tool === 'docker')!;
    once(e);
    b.built.docker = true;
  }
}
