/**
 * Applying config-only steps (env, workdir, user, label, expose, volume, shell, stopsignal,
 * healthcheck) and the image-level settings to an image config, the way Docker's builder does.
 */
import { posix } from 'node:path';
import type { ContainerConfig, HealthConfig } from '../oci/types.js';
import type { ImageSpec, Step } from '../specfile/model.js';

/** The default shell of shell-form RUN and CMD. */
export const DEFAULT_SHELL = ['/bin/sh', '-c'] as const;

/** Sets `K=V` in an Env list, replacing an existing K. */
export function setEnv(env: readonly string[], key: string, value: string): string[] {
  const out = env.filter((e) => e.split('=', 1)[0] !== key);
  out.push(`${key}=${value}`);
  return out;
}

/** Returns `cfg` changed by a config-only step (layer steps return it unchanged). */
export function applyConfigStep(cfg: ContainerConfig, step: Step): ContainerConfig {
  const c: ContainerConfig = { ...cfg };
  switch (step.kind) {
    case 'env': {
      let env = c.Env ?? [];
      for (const [k, v] of Object.entries(step.vars)) env = setEnv(env, k, v);
      c.Env = env;
      break;
    }
    case 'workdir':
      c.WorkingDir = posix.resolve(c.WorkingDir || '/', step.path);
      break;
    case 'user':
      c.User = step.user;
      break;
    case 'label':
      c.Labels = { ...(c.Labels ?? {}), ...step.labels };
      break;
    case 'expose':
      c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
      for (const p of step.ports) c.ExposedPorts[p.includes('/') ? p : `${p}/tcp`] = {};
      break;
    case 'volume':
      c.Volumes = { ...(c.Volumes ?? {}) };
      for (const p of step.paths) c.Volumes[p] = {};
      break;
    case 'shell':
      c.Shell = [...step.argv];
      break;
    case 'stopsignal':
      c.StopSignal = step.signal;
      break;
    case 'healthcheck': {
      const h: HealthConfig = { Test: [...step.test] };
      if (step.interval) h.Interval = step.interval;
      if (step.timeout) h.Timeout = step.timeout;
      if (step.startPeriod) h.StartPeriod = step.startPeriod;
      if (step.startInterval) h.StartInterval = step.startInterval;
      if (step.retries) h.Retries = step.retries;
      c.Healthcheck = h;
      break;
    }
    default:
      break;
  }
  return c;
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
