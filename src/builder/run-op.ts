/**
 * The RUN step as an operation. Key: the step alone over its parent (the command, its env, network
 * and secret ids are in the canonical step; secret values never are). Execution: the command runs in
 * the sandbox on the layers below, and its diff is packed as the layer; with the overlay driver the
 * upperdir is kept as the layer's lowerdir form instead of unpacking the tar later.
 */
import { promises as fs } from 'node:fs';
import { DimgError } from '../errors.js';
import type { RunStep } from '../specfile/model.js';
import { chainIds } from '../store/overlay.js';
import { DEFAULT_SHELL, setEnv } from './config-steps.js';
import { stepKey } from './dependencies.js';
import { packLayerSources } from './layer-blobs.js';
import { adoptLayerDir, settleRunDiff } from './layer-dirs.js';
import { runInSandbox, type SecretMount } from './sandbox.js';
import type { LayerOp, StepRun } from './step-op.js';

/** The RUN operation. */
export const runOp: LayerOp<RunStep> = {
  kind: 'layer',
  cacheKey: async (step, k) => ({ key: stepKey(k.parent, step, null) }),
  execute: async (step, run) => {
    const { config, layers, diffIds, store } = run;
    const chains = chainIds([...diffIds]);
    const parents = layers.map((l, j) => {
      const diffId = diffIds[j]!;
      return { chainId: chains[j]!, diffId, open: () => run.openParent(l, diffId) };
    });
    const argv = step.form === 'shell' ? [...(config.Shell ?? DEFAULT_SHELL), ...step.command] : [...step.command];
    let env = [...(config.Env ?? [])];
    for (const [k, v] of Object.entries(step.env)) env = setEnv(env, k, v);
    const secrets = await secretFiles(step, run);
    const index = run.position + 2;
    return runInSandbox(
      {
        store,
        parents,
        argv,
        env,
        user: config.User,
        workdir: config.WorkingDir,
        network: step.network,
        secrets,
        driver: run.runDriver,
        label: run.label,
        signal: run.signal,
        onOutput: (chunk) => run.emit({ type: 'step-output', image: run.spec.key, index, chunk }),
      },
      async ({ diffDir, driver }) => {
        if (driver === 'copy') {
          const message = 'overlay mounts are unavailable here: RUN uses the copy-based driver (slower)';
          run.emit({ type: 'notice', image: run.spec.key, message });
        }
        const pack = { overlay: true, sourceDateEpoch: run.epoch };
        const layer = await packLayerSources(store, [{ from: diffDir, to: '' }], pack);
        if (driver === 'overlay') {
          // The upperdir is the new layer in lowerdir form: keep it instead of unpacking the tar later.
          try {
            settleRunDiff(diffDir, run.epoch);
            const chain = chainIds([...diffIds, layer.diffId]);
            await adoptLayerDir(store, chain[chain.length - 1]!, diffDir);
          } catch {
            /* the layer is unpacked from its tar when a later step needs it */
          }
        }
        return layer;
      },
    );
  },
};

/** Host files for the step's secrets: --secret values, the spec's `src`, or its `env` written to a temp file. */
async function secretFiles(step: RunStep, run: StepRun): Promise<SecretMount[]> {
  const out: SecretMount[] = [];
  for (const s of step.secrets) {
    let src = run.secrets?.[s.id] ?? s.src;
    if (!src && s.env && process.env[s.env] !== undefined) {
      src = run.tempPath('secret');
      await fs.writeFile(src, process.env[s.env]!, { mode: 0o600 });
    }
    if (!src) {
      if (!s.required) continue;
      const hint = `pass --secret id=${s.id},src=PATH${s.env ? ` or set ${s.env}` : ''}`;
      throw new DimgError('SECRET_MISSING', `${run.label}: secret "${s.id}" has no value`, hint);
    }
    out.push({ id: s.id, src, target: s.target });
  }
  return out;
}
