/**
 * How a RUN step gets a writable root over its parent layers, and how its change is read back: the
 * two halves that differ between the overlay, copy and rootless drivers, behind one seam
 * (`RootfsDriver`), so the sandbox (src/builder/sandbox.ts) holds no `if (driver === …)`.
 *
 * - overlay: the parents are the store's unpacked layer dirs (unpacked once, shared), stacked under
 *   an `init` dir holding the step's mount points and a fresh upperdir that becomes the layer. The
 *   mount itself is made inside the step's namespace (sandbox-script.ts), from `mount`.
 * - copy: the parents are flattened into a private tree, snapshotted, and after the step the
 *   difference is written out in upperdir form (copy-driver.ts).
 * - rootless: the copy driver for a non-root caller whose steps run in a user namespace with
 *   subordinate ids (rootless-ids.ts): the layers' owners are set from inside that namespace before
 *   the snapshot (rootless-owners.ts), so are the diff's, and the layer writer maps the host ids back
 *   (`hostIds`), so a rootless layer is byte for byte the layer a root build makes.
 */
import { promises as fs } from 'node:fs';
import { join, relative } from 'node:path';
import type { Store } from '../store/store.js';
import type { RunDriver, ParentLayer } from './sandbox.js';
import { LayerView } from './layer-view.js';
import { prepareMountPoints, type MountPoint } from './mount-points.js';
import { snapshot, writeDiff, type DiffDeferral, type Snapshot } from './copy-driver.js';
import { extractLayer } from '../layer/index.js';
import { DimgError } from '../errors.js';
import { hostIdTranslation, runInUserNamespace, type IdMapping } from './rootless-ids.js';
import { applyLayerOwners, layerOwners } from './rootless-owners.js';

/** The overlay mount the step's namespace makes (paths relative to `cwd`, lowerdirs newest first). */
export interface OverlayMount {
  cwd: string;
  lowers: string[];
  upper: string;
  work: string;
}

/** A prepared root: where the step runs, what its parents hold, and which mount points it got. */
export interface PreparedRoot {
  /** Host path of the root the runtime pivots into. */
  root: string;
  /** The parent layers, read-only, for looking up /etc/passwd and the like. */
  view: LayerView;
  /** The requested mount points that could be provided safely. */
  usable: MountPoint[];
  /** The mount to make first (overlay driver only). */
  mount?: OverlayMount;
  /** After the step ran: the directory holding its change in overlay upperdir form. */
  diff(): Promise<string>;
  /** Host id → the id the step saw, for the layer writer (rootless only; identity otherwise). */
  hostIds?: { uid(host: number): number; gid(host: number): number };
  /** Removes what the caller cannot remove by itself (rootless: files of subordinate ids). */
  cleanup?(): Promise<void>;
}

/** One way of giving a RUN step its root. */
export interface RootfsDriver {
  readonly name: RunDriver;
  /** Prepares the root inside the workspace `ws` (a fresh directory of the store's overlay dir). */
  prepare(ws: string, parents: readonly ParentLayer[], points: readonly MountPoint[]): Promise<PreparedRoot>;
}

/** The overlay driver over `store`'s unpacked layer dirs. */
export function overlayRootfs(store: Store): RootfsDriver {
  return {
    name: 'overlay',
    async prepare(ws, parents, points) {
      const dirs = [];
      for (const p of parents) dirs.push(await store.overlay.ensure(p.chainId, p.open));
      dirs.reverse();
      for (const d of ['init', 'upper', 'work', 'merged']) await fs.mkdir(join(ws, d), { mode: 0o755 });
      const view = new LayerView(dirs.map((d) => d.diffDir));
      // Mount points go into the init dir (shadowing what the parents have there), never the upperdir.
      const usable = await prepareMountPoints(join(ws, 'init'), view, points, true);
      const rel = (d: string) => relative(store.overlay.dir, join(ws, d));
      const mount = { cwd: store.overlay.dir, lowers: [rel('init'), ...dirs.map((d) => d.link)], upper: rel('upper'), work: rel('work') };
      return { root: join(ws, 'merged'), view, usable, mount, diff: async () => join(ws, 'upper') };
    },
  };
}

/** The copy driver: a flattened private tree, diffed against its snapshot after the step. */
export function copyRootfs(): RootfsDriver {
  return {
    name: 'copy',
    async prepare(ws, parents, points) {
      const root = join(ws, 'root');
      await fs.mkdir(root, { mode: 0o755 });
      for (const p of parents) await extractLayer(await p.open(), root, { mode: 'flatten' });
      const view = new LayerView([root]);
      // Made before the snapshot, so the diff never sees them.
      const usable = await prepareMountPoints(root, view, points, false);
      const before: Snapshot = await snapshot(root);
      return {
        root,
        view,
        usable,
        async diff() {
          const diffDir = join(ws, 'diff');
          await fs.mkdir(diffDir, { mode: 0o755 });
          await writeDiff(root, before, diffDir);
          return diffDir;
        },
      };
    },
  };
}

/**
 * The rootless driver: the copy driver's private tree, owned as the layers say from inside the user
 * namespace of `mapping` (the caller's own files read as root there).
 */
export function rootlessRootfs(mapping: IdMapping): RootfsDriver {
  return {
    name: 'rootless',
    async prepare(ws, parents, points) {
      const root = join(ws, 'root');
      await fs.mkdir(root, { mode: 0o755 });
      for (const p of parents) await extractLayer(await p.open(), root, { mode: 'flatten', chown: false });
      await applyLayerOwners(mapping, root, await layerOwners(parents.map((p) => p.open)));
      const view = new LayerView([root]);
      const usable = await prepareMountPoints(root, view, points, false);
      const before: Snapshot = await unreadable(root, () => snapshot(root));
      return {
        root,
        view,
        usable,
        hostIds: hostIdTranslation(mapping),
        async diff() {
          const diffDir = join(ws, 'diff');
          await fs.mkdir(diffDir, { mode: 0o755 });
          const deferral = new NamespaceDeferral(mapping);
          await unreadable(root, () => writeDiff(root, before, diffDir, deferral));
          await deferral.chown();
          return diffDir;
        },
        async cleanup() {
          // Directories of subordinate ids without write permission for the caller: only the
          // namespace's root may empty them.
          await runInUserNamespace(mapping, 'rm -rf -- "$@"', [root, join(ws, 'diff')]);
        },
      };
    },
  };
}

/**
 * writeDiff's owners and links for files of subordinate ids, made as the namespace's root: links
 * before directory times are restored, owners last (a chowned directory is no longer the caller's
 * to set times on). The caller's own files read as 0:0 inside and need neither.
 */
class NamespaceDeferral implements DiffDeferral {
  private readonly owners: [string, number, number][] = [];
  private readonly links: string[] = [];
  private readonly uid = process.geteuid?.() ?? 0;
  private readonly gid = process.getegid?.() ?? 0;

  constructor(private readonly mapping: IdMapping) {}

  async own(dest: string, st: { uid: number; gid: number }): Promise<void> {
    if (st.uid !== this.uid || st.gid !== this.gid) this.owners.push([dest, st.uid, st.gid]);
  }

  async link(src: string, dest: string, st: { uid: number }): Promise<void> {
    if (st.uid === this.uid) await fs.link(src, dest);
    else this.links.push(src, dest);
  }

  async beforeTimes(): Promise<void> {
    await this.batches(this.links, 'while [ $# -gt 1 ]; do ln -- "$1" "$2" || exit 1; shift 2; done');
  }

  /** Sets the collected owners, named by the ids they map to inside. */
  async chown(): Promise<void> {
    const ids = hostIdTranslation(this.mapping);
    const args = this.owners.flatMap(([p, u, g]) => [`${ids.uid(u)}:${ids.gid(g)}`, p]);
    await this.batches(args, 'while [ $# -gt 1 ]; do chown -h "$1" "$2" || exit 1; shift 2; done');
  }

  private async batches(pairs: string[], script: string): Promise<void> {
    for (let i = 0; i < pairs.length; i += 1000) {
      await runInUserNamespace(this.mapping, script, pairs.slice(i, i + 1000));
    }
  }
}

/** Runs `f`; a directory the caller cannot read (0700 of another id) fails the step with a DimgError. */
async function unreadable<T>(root: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code !== 'EACCES') throw e;
    const where = err.path ? `/${relative(root, err.path)}` : 'a directory';
    throw new DimgError(
      'RUN_SANDBOX_FAILED',
      `rootless RUN cannot read ${where} of the step's root (${err.message})`,
      'rootless RUN reads the root as the calling user: make the directory readable (chmod o+rx), or build as root',
    );
  }
}

/** The driver called `name`; `mapping` is required for `rootless`. */
export function rootfsDriver(name: RunDriver, store: Store, mapping?: IdMapping): RootfsDriver {
  if (name === 'rootless') {
    if (!mapping) {
      throw new DimgError('RUN_UNSUPPORTED', 'the rootless RUN driver needs a user namespace', 'see `dimg info`');
    }
    return rootlessRootfs(mapping);
  }
  return name === 'overlay' ? overlayRootfs(store) : copyRootfs();
}
