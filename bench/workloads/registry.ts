/**
 * Workloads 4–6: cold push of the built app image to an empty registry, push when already pushed, and
 * copy between two repositories of one registry. dimg against `docker push` and `skopeo copy`.
 * A cold push starts from a fresh copy of the just-built store each run, so nothing dimg remembers from
 * an earlier push (compressed layer forms, blob holders) makes it warm; the registry is emptied
 * (restarted with wiped storage) before every cold run of every tool.
 */
import { copyStore, dimgArgv, scratchRegistry, workPath, type Bench } from '../context.js';
import { DOCKER, loadNow, shOrThrow } from '../env.js';
import { alternate, once, type CaseResult, type Entrant, type ToolResult } from '../runner.js';
import { buildStore, ensureBuilt } from './build.js';

/** Runs the push and copy cases (`which` picks `push` and/or `copy`). */
export async function registryCases(b: Bench, which: { push: boolean; copy: boolean }): Promise<CaseResult[]> {
  const dockerOk = b.opts.peers && b.peers.docker === null;
  ensureBuilt(b, dockerOk);
  const reg = await scratchRegistry(b);
  const template = workPath(b, 'stores', 'push-template');
  copyStore(b, buildStore(b), template);
  const store = workPath(b, 'stores', 'push');
  const dimgDst = `${reg.host}/bench/dimg:1`;
  const dockerDst = `${reg.host}/bench/docker:1`;
  if (dockerOk) shOrThrow(`${DOCKER} tag ${b.appName} ${dockerDst}`);
  const skipped = (peer: 'docker' | 'skopeo'): ToolResult[] =>
    !b.opts.peers ? [] : b.peers[peer] === null ? [] : [{ tool: peer, skipped: b.peers[peer]! }];
  const dimgPush: Entrant = { tool: 'dimg', argv: dimgArgv(b, store, 'image', 'push', '-q', b.appName, dimgDst) };
  const dockerPush: Entrant = { tool: 'docker', argv: [DOCKER, 'push', '-q', dockerDst], docker: true };
  const out: CaseResult[] = [];

  // the warm and copy cases need the image in the registry and dimg's store as left by a push
  copyStore(b, template, store);
  if (which.push) {
    process.stderr.write(`== push: cold, empty registry (load ${loadNow()})\n`);
    const list: Entrant[] = [
      {
        ...dimgPush,
        prepare: async () => {
          await reg.restartEmpty();
          copyStore(b, template, store);
        },
      },
    ];
    if (dockerOk) list.push({ ...dockerPush, prepare: () => reg.restartEmpty() });
    const before = loadNow();
    const tools = await alternate(list, b.opts.runs, skipped('docker'));
    out.push({
      id: 'push-cold',
      title: 'cold push to an empty registry',
      unit: 's',
      tools,
      load: { before, after: loadNow() },
      notes: ['registry restarted with wiped storage before every run; dimg from a never-pushed copy of its store'],
    });
  }
  once(dimgPush);
  if (dockerOk) once(dockerPush);
  if (which.push) {
    process.stderr.write(`== push: already pushed (load ${loadNow()})\n`);
    const list: Entrant[] = [dimgPush];
    if (dockerOk) list.push(dockerPush);
    const before = loadNow();
    const tools = await alternate(list, b.opts.runs, skipped('docker'));
    out.push({ id: 'push-warm', title: 'push when already pushed', unit: 's', tools, load: { before, after: loadNow() }, notes: [] });
  }
  if (which.copy) {
    process.stderr.write(`== copy between two repositories of one registry (load ${loadNow()})\n`);
    let n = 0;
    const copyStoreDir = workPath(b, 'stores', 'copy-unused');
    const dimgCopy: Entrant = { tool: 'dimg', argv: [] };
    dimgCopy.prepare = () => {
      n++;
      dimgCopy.argv = dimgArgv(b, copyStoreDir, 'image', 'copy', '-q', dimgDst, `${reg.host}/bench/copy-dimg-${n}:1`);
    };
    const list: Entrant[] = [dimgCopy];
    if (b.opts.peers && b.peers.skopeo === null) {
      const sk: Entrant = { tool: 'skopeo', argv: [] };
      sk.prepare = () => {
        sk.argv = ['skopeo', 'copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${dimgDst}`, `docker://${reg.host}/bench/copy-skopeo-${n}:1`];
      };
      list.push(sk);
    }
    const before = loadNow();
    const tools = await alternate(list, b.opts.runs, skipped('skopeo'));
    out.push({
      id: 'copy',
      title: 'copy between two repositories of one registry',
      unit: 's',
      tools,
      load: { before, after: loadNow() },
      notes: ['a new destination repository every run; source: the image dimg pushed'],
    });
  }
  return out;
}
