/**
 * Workload 8: `save` and `load` of two images, the built app (busybox base) and a Debian bookworm
 * minbase made with debootstrap (its rootfs tarball is cached under the work directory, or taken from
 * the peers' cache). When debootstrap cannot run, a large synthetic rootfs stands in and every result
 * says so. Both tools import the same rootfs tarball, so the two stores hold the same files.
 */
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { copyStore, dimgArgv, setAside, workPath, type Bench } from '../context.js';
import { DOCKER, ensureTool, loadNow, sh, shOrThrow } from '../env.js';
import { alternate, once, type CaseResult, type Entrant, type ToolResult } from '../runner.js';
import { buildStore, ensureBuilt } from './build.js';

const SHARED_DEBIAN_TAR = `${process.env.PEERS_DIR ?? '/tmp/peers'}/rootfs/debian-bookworm-minbase.tar`;

/** The second image's rootfs tarball: Debian minbase when debootstrap works, else a labelled synthetic one. */
function secondImageTar(b: Bench): { tar: string; name: string; label: string } {
  const own = workPath(b, 'debian-bookworm-minbase.tar');
  for (const t of [own, SHARED_DEBIAN_TAR]) {
    if (existsSync(t) && statSync(t).size > 0) return { tar: t, name: 'dimgbench/debian:minbase', label: 'Debian bookworm minbase (debootstrap)' };
  }
  let why = ensureTool('debootstrap', 'debootstrap', b.opts.install);
  if (!why) {
    const mirror =
      sh(`awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null`).out.trim() || 'http://deb.debian.org/debian';
    const dir = workPath(b, 'debian-rootfs');
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`debootstrap --variant=minbase bookworm from ${mirror} (once; cached in ${own})\n`);
    const r = sh(`debootstrap --variant=minbase bookworm ${dir} ${mirror} > ${workPath(b, 'debootstrap.log')} 2>&1`);
    if (r.ok) {
      sh(`rm -rf ${dir}/var/cache/apt/archives/*.deb ${dir}/var/lib/apt/lists/* ${dir}/var/log/*.log ${dir}/var/cache/ldconfig/aux-cache`);
      shOrThrow(`tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --xattrs -C ${dir} -c . > ${own}.tmp && mv ${own}.tmp ${own}`);
      rmSync(dir, { recursive: true, force: true });
      return { tar: own, name: 'dimgbench/debian:minbase', label: 'Debian bookworm minbase (debootstrap)' };
    }
    why = `debootstrap failed: ${sh(`tail -2 ${workPath(b, 'debootstrap.log')}`).out.trim().replace(/\n/g, ' / ')}`;
  }
  // stand-in: ~110 MiB in ~6,600 files, like the minbase (half compressible text, half random)
  const syn = workPath(b, 'synthetic-rootfs.tar');
  if (!existsSync(syn)) {
    const dir = workPath(b, 'synthetic-rootfs');
    rmSync(dir, { recursive: true, force: true });
    for (let i = 0; i < 6600; i++) {
      const d = join(dir, 'usr', 'share', `p${Math.floor(i / 100)}`);
      mkdirSync(d, { recursive: true });
      const size = 8192 + (i % 13) * 1024;
      writeFileSync(join(d, `f${i}`), i % 2 ? Buffer.alloc(size, `line ${i} of a synthetic file\n`) : Buffer.from(Array.from({ length: size }, (_, k) => (k * 2654435761 + i) & 255)));
    }
    shOrThrow(`tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C ${dir} -c . > ${syn}`);
    rmSync(dir, { recursive: true, force: true });
  }
  return { tar: syn, name: 'dimgbench/synthetic:1', label: `SYNTHETIC stand-in for Debian minbase (${why})` };
}

const mib = (f: string) => (existsSync(f) ? (statSync(f).size / 2 ** 20).toFixed(0) : '?');

/** Runs the save and load cases. */
export async function archiveCases(b: Bench): Promise<CaseResult[]> {
  const dockerOk = b.opts.peers && b.peers.docker === null;
  ensureBuilt(b, dockerOk);
  const second = secondImageTar(b);
  const store = workPath(b, 'stores', 'save');
  copyStore(b, buildStore(b), store);
  process.stderr.write(`== save/load setup: importing ${second.label} (${mib(second.tar)} MiB tar) into both stores\n`);
  once({ tool: 'dimg', argv: dimgArgv(b, store, 'image', 'import', '-c', 'CMD ["/bin/bash"]', second.tar, second.name) });
  if (dockerOk && !sh(`${DOCKER} image inspect ${second.name} >/dev/null 2>&1`).ok) {
    shOrThrow(`${DOCKER} import -c 'CMD ["/bin/bash"]' ${second.tar} ${second.name}`);
  }
  const dimgTar = workPath(b, 'save', 'dimg.tar');
  const dockerTar = workPath(b, 'save', 'docker.tar');
  const skipped: ToolResult[] = b.opts.peers && !dockerOk ? [{ tool: 'docker', skipped: b.peers.docker! }] : [];
  const notes = [`images: ${b.appName} + ${second.label}`];
  const out: CaseResult[] = [];

  process.stderr.write(`== save 2 images (load ${loadNow()})\n`);
  const saves: Entrant[] = [
    { tool: 'dimg', argv: dimgArgv(b, store, 'image', 'save', '-o', dimgTar, b.appName, second.name), prepare: () => setAside(b, dimgTar) },
  ];
  if (dockerOk) saves.push({ tool: 'docker', argv: [DOCKER, 'save', '-o', dockerTar, b.appName, second.name], docker: true, prepare: () => setAside(b, dockerTar) });
  let before = loadNow();
  let tools = await alternate(saves, b.opts.runs, skipped);
  out.push({ id: 'save', title: 'save 2 images to a tar', unit: 's', tools, load: { before, after: loadNow() }, notes: [...notes, `tar sizes: dimg ${mib(dimgTar)} MiB, docker ${mib(dockerTar)} MiB`] });

  process.stderr.write(`== load 2 images into an empty store (load ${loadNow()})\n`);
  const loadStore = workPath(b, 'stores', 'load');
  const loads: Entrant[] = [
    { tool: 'dimg', argv: dimgArgv(b, loadStore, 'image', 'load', '-i', dimgTar), prepare: () => setAside(b, loadStore) },
  ];
  if (dockerOk && existsSync(dockerTar)) {
    loads.push({
      tool: 'docker',
      argv: [DOCKER, 'load', '-q', '-i', dockerTar],
      docker: true,
      // remove both images with all their names, so the load writes every layer
      prepare: () => void sh(`${DOCKER} image inspect -f '{{.Id}}' ${b.appName} ${second.name} 2>/dev/null | xargs -r ${DOCKER} rmi -f >/dev/null 2>&1`),
    });
  }
  before = loadNow();
  tools = await alternate(loads, b.opts.runs, skipped);
  out.push({ id: 'load', title: 'load 2 images into an empty store', unit: 's', tools, load: { before, after: loadNow() }, notes: [...notes, 'each tool loads the archive it saved'] });
  return out;
}
