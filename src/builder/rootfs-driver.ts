/**
 * How a RUN step gets a writable root over its parent layers, and how its change is read back: the
 * two halves that differ between the overlay and copy drivers, behind one seam (`RootfsDriver`), so
 * the sandbox (src/builder/sandbox.ts) holds no `if (driver === …)`. A rootless driver (issue #18) is
 * a third implementation.
 *
 * - overlay: the parents are the store's unpacked layer dirs (unpacked once, shared), stacked under
 *   an `init` dir holding the step's mount points and a fresh upperdir that becomes the layer. The
 *   mount itself is made inside the step's namespace (sandbox-script.ts), from `mount`.
 * - copy: the parents are flattened into a private tree, snapshotted, and after the step the
 *   difference is written out in upperdir form (copy-driver.ts).
 */
import { promises as fs } from 'node:fs';
import { join, relative } from 'node:path';
import type { Store } from '../store/store.js';
import type { RunDriver, ParentLayer } from './sandbox.js';
import { LayerView } from './layer-view.js';
import { prepareMountPoints, type MountPoint } from './mount-points.js';
import { snapshot, writeDiff, type Snapshot } from './copy-driver.js';
import { extractLayer } from '../layer/index.js';

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

/** The driver called `name`. */
export function rootfsDriver(name: RunDriver, store: Store): RootfsDriver {
  return name === 'overlay' ? overlayRootfs(store) : copyRootfs();
}
