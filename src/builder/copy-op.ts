/**
 * COPY and ADD as an operation. Key: over the parent, the canonical step and either the identity of
 * the `from` image or the content digest of the context files sent (paths, modes, contents; not
 * mtimes). Execution: the sources (archives of `add` unpacked) are packed as one layer owned per
 * `chown`, moded per `chmod`, with parent directories keeping their attributes in the image; a later
 * RUN gets the layer's lowerdir written while it is packed, and unchanged files of the previous
 * layer of this step are reused (copy-memory.ts).
 */
import { lstatSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { DimgError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { CopyStep } from '../specfile/model.js';
import { IGNORE_FILES } from '../specfile/ignore.js';
import { chainIds } from '../store/overlay.js';
import { LayerMirror } from '../layer/mirror.js';
import { OffsetRecorder } from '../layer/offset-record.js';
import { PreviousTarReader } from '../layer/previous-pack.js';
import type { PackOptions } from '../layer/tar-writer.js';
import { stepKey, type CopyPlan, type CopySource, type TreeDigestMemo } from './dependencies.js';
import { copyInputDigest } from './copy-inputs.js';
import { loadCopyMemory, saveCopyMemory } from './copy-memory.js';
import { contextFilter, parseChmod, resolveChown, resolveCopy, unpackArchive } from './copy-step.js';
import { packLayerSources, type PendingLayer } from './layer-blobs.js';
import { adoptLayerDir } from './layer-dirs.js';
import type { LayerOp, StepRun } from './step-op.js';

/** The COPY/ADD operation. */
export const copyOp: LayerOp<CopyStep> = {
  kind: 'layer',
  cacheKey: async (step, k) => {
    if (step.from) {
      const fromIdentity = await k.fromIdentity(step.from);
      return { key: stepKey(k.parent, step, { from: fromIdentity }), fromIdentity };
    }
    const { spec, position } = k;
    const at = `${position + 2}/${spec.steps.length + 1}`;
    const label = `[${spec.key} ${at}] ${step.kind.toUpperCase()} ${step.src.join(' ')}`;
    if (!spec.context) {
      const message = `${label}: image ${spec.key} has no context to copy from`;
      throw new DimgError('CONTEXT_MISSING', message, 'set `context:` for the image');
    }
    const context = spec.context;
    const resolved = await resolveCopy(step, context, k.config.WorkingDir, k.matcher, label);
    const filter = contextFilter(context, k.matcher);
    const copyPlan: CopyPlan = { ...resolved, root: context, filter };
    const walk = () => copyInputDigest(resolved.sources, filter, k.digests);
    const content = k.trees ? await memoisedCopy(k.trees, context, resolved.sources, walk) : await walk();
    return { key: stepKey(k.parent, step, { content }), copyPlan };
  },
  execute: (step, run) => copyLayer(step, run),
};

async function copyLayer(step: CopyStep, run: StepRun): Promise<PendingLayer> {
  const { store, diffIds } = run;
  let plan = run.copyPlan;
  if (!plan) {
    const root = await run.fromRoot(step.from!);
    const resolved = await resolveCopy(step, root, run.config.WorkingDir, undefined, run.label);
    plan = { ...resolved, root };
  }
  const view = await run.parentView();
  const owner = await resolveChown(step.chown, view, run.label);
  const mode = parseChmod(step.chmod, run.label);
  const sources: CopySource[] = [];
  for (let i = 0; i < plan.sources.length; i++) {
    const s = plan.sources[i]!;
    if (!plan.archives.has(i)) {
      sources.push(s);
      continue;
    }
    const dir = run.tempPath('add');
    await unpackArchive(s.from, dir);
    sources.push({ from: dir, to: s.to });
  }
  // Parent directories of the destinations keep the attributes they have in the image: the
  // layer's entry for e.g. `tmp/` replaces them when unpacked (parentAttrs must answer synchronously).
  const attrs = new Map<string, { mode: number; uid: number; gid: number; mtime: number } | undefined>();
  if (view) {
    for (const s of sources) {
      const parts = s.to.split('/').filter(Boolean);
      for (let k = 1; k < parts.length; k++) {
        const p = parts.slice(0, k).join('/');
        if (attrs.has(p)) continue;
        const e = await view.lookup(p);
        const st = e?.stats;
        const mtime = st ? Math.floor(st.mtimeMs / 1000) : 0;
        attrs.set(p, st?.isDirectory() ? { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime } : undefined);
      }
    }
  }
  const filter = plan.filter;
  const root = plan.root;
  // A later RUN needs this layer as a lowerdir: write it there while packing (from the same bytes)
  // rather than unpacking the tar afterwards.
  const slot = `${run.spec.key}\0${run.position}`;
  // --no-cache: nothing from earlier builds, not even unchanged file contents.
  const memory = run.noCache ? {} : await loadCopyMemory(store, slot);
  const mirror = (await run.runFollows())
    ? new LayerMirror({ dir: await store.overlay.stagingDir('copy'), donor: memory.donor })
    : undefined;
  const record = new OffsetRecorder();
  const packOpts: PackOptions = {
    observers: [record, mirror],
    content: memory.previous ? new PreviousTarReader(memory.previous) : undefined,
    sourceDateEpoch: run.epoch,
    owner,
    mode,
    // Ignore rules apply to context files only, not to unpacked archives.
    filter: filter ? (rel, isDir, src) => (src.from.startsWith(root) ? filter(rel, isDir, src) : true) : undefined,
    parentAttrs: (p) => attrs.get(p.replace(/^\/+|\/+$/g, '')),
  };
  try {
    const layer = await packLayerSources(store, sources, packOpts);
    if (mirror?.complete) await adoptLayerDir(store, lastChainId([...diffIds, layer.diffId]), mirror.dir);
    // Remembered once the tar is in the store (the image waits for it like for the cache entry).
    const parentChain = diffIds.length > 0 ? lastChainId([...diffIds]) : undefined;
    run.defer(layer.durable.then(() => saveCopyMemory(store, slot, layer.diffId, parentChain, record.files)));
    return layer;
  } finally {
    if (mirror) await fs.rm(mirror.dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function lastChainId(diffIds: Digest[]): Digest {
  const chain = chainIds(diffIds);
  return chain[chain.length - 1]!;
}

/**
 * A context copy's walk through the memo. The key names the context, its inode and the sources with
 * theirs (what the walk reads and where it puts it); the roots are the sources and the context's
 * ignore files (the filter's rules), so an edit of either is a change.
 */
async function memoisedCopy(
  trees: TreeDigestMemo,
  context: string,
  sources: readonly CopySource[],
  walk: () => Promise<Digest>,
): Promise<Digest> {
  const id = (p: string) => {
    const st = lstatSync(p, { throwIfNoEntry: false });
    return st ? [st.dev, st.ino] : null;
  };
  const key = `copy ${JSON.stringify([context, id(context), sources.map((s) => [s.from, s.to, id(s.from)])])}`;
  const roots = [...sources.map((s) => s.from), ...IGNORE_FILES.map((n) => join(context, n))];
  return trees.digest(key, roots, walk);
}
