/**
 * Config-only steps (env, workdir, user, label, expose, volume, shell, stopsignal, healthcheck) as
 * operations, and the image-level settings applied to an image config, the way Docker's builder does.
 */
import { posix } from 'node:path';
import type { ContainerConfig, HealthConfig } from '../oci/types.js';
import type { CopyStep, ImageSpec, RunStep, Step } from '../specfile/model.js';
import { stepKey } from './dependencies.js';
import type { ConfigOp } from './step-op.js';

/** The default shell of shell-form RUN and CMD. */
export const DEFAULT_SHELL = ['/bin/sh', '-c'] as const;

/** Sets `K=V` in an Env list, replacing an existing K. */
export function setEnv(env: readonly string[], key: string, value: string): string[] {
  const out = env.filter((e) => e.split('=', 1)[0] !== key);
  out.push(`${key}=${value}`);
  return out;
}

/** The config steps, by kind. */
export type ConfigStep = Exclude<Step, RunStep | CopyStep>;

type Changes = { [K in ConfigStep['kind']]: (c: ContainerConfig, step: Extract<ConfigStep, { kind: K }>) => void };

/** How each config step changes a (copied) container config, as Docker's builder does. */
const CHANGES: Changes = {
  env: (c, step) => {
    let env = c.Env ?? [];
    for (const [k, v] of Object.entries(step.vars)) env = setEnv(env, k, v);
    c.Env = env;
  },
  workdir: (c, step) => {
    c.WorkingDir = posix.resolve(c.WorkingDir || '/', step.path);
  },
  user: (c, step) => {
    c.User = step.user;
  },
  label: (c, step) => {
    c.Labels = { ...(c.Labels ?? {}), ...step.labels };
  },
  expose: (c, step) => {
    c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
    for (const p of step.ports) c.ExposedPorts[p.includes('/') ? p : `${p}/tcp`] = {};
  },
  volume: (c, step) => {
    c.Volumes = { ...(c.Volumes ?? {}) };
    for (const p of step.paths) c.Volumes[p] = {};
  },
  shell: (c, step) => {
    c.Shell = [...step.argv];
  },
  stopsignal: (c, step) => {
    c.StopSignal = step.signal;
  },
  healthcheck: (c, step) => {
    const h: HealthConfig = { Test: [...step.test] };
    if (step.interval) h.Interval = step.interval;
    if (step.timeout) h.Timeout = step.timeout;
    if (step.startPeriod) h.StartPeriod = step.startPeriod;
    if (step.startInterval) h.StartInterval = step.startInterval;
    if (step.retries) h.Retries = step.retries;
    c.Healthcheck = h;
  },
};

/**
 * The operation of the config step kind `kind`: keyed by the step alone (no inputs besides its
 * parent), and executed by changing the config; it makes no layer.
 */
export function configOp<K extends ConfigStep['kind']>(kind: K): ConfigOp<Extract<ConfigStep, { kind: K }>> {
  const change = CHANGES[kind] as (c: ContainerConfig, step: Extract<ConfigStep, { kind: K }>) => void;
  return {
    kind: 'config',
    cacheKey: async (step, k) => ({ key: stepKey(k.parent, step, null) }),
    configure: (config, step) => {
      const c: ContainerConfig = { ...config };
      change(c, step);
      return c;
    },
  };
}

/**
 * Applies the image-level settings after the steps: labels merged over step labels, entrypoint and
 * cmd (setting an entrypoint without a cmd clears an inherited cmd, as Docker does). Returns the
 * config and the history lines (`ENTRYPOINT [...]`, `CMD [...]`, `LABEL …`) for what was set.
 */
export function applyImageLevel(cfg: ContainerConfig, spec: ImageSpec): { config: ContainerConfig; history: string[] } {
  const c: ContainerConfig = { ...cfg };
  const history: string[] = [];
  if (Object.keys(spec.labels).length > 0) {
    c.Labels = { ...(c.Labels ?? {}), ...spec.labels };
    history.push(`LABEL ${Object.entries(spec.labels).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }
  if (spec.entrypoint) {
    c.Entrypoint = [...spec.entrypoint];
    history.push(`ENTRYPOINT ${JSON.stringify(spec.entrypoint)}`);
    if (!spec.cmd) delete c.Cmd;
  }
  if (spec.cmd) {
    c.Cmd = [...spec.cmd];
    history.push(`CMD ${JSON.stringify(spec.cmd)}`);
  }
  return { config: c, history };
}
