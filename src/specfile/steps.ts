/**
 * Canonical steps: turning the YAML step objects (already schema-checked) into the `Step` union
 * with every default filled, the shared value conversions the Dockerfile frontend also uses
 * (ports, durations, health checks), and `canonicalStep`, the stable form the builder hashes.
 */
import { posix } from 'node:path';
import { canonicalJson } from '../oci/canonical-json.js';
import type { CopyFrom, HealthcheckStep, SecretMount, Step } from './model.js';

/** Default shell for shell-form commands, as Docker's on Linux. */
export const DEFAULT_SHELL: readonly string[] = ['/bin/sh', '-c'];

/** Docker's default mount point of a build secret. */
export function defaultSecretTarget(id: string): string {
  return `/run/secrets/${id}`;
}

/** `8080` → `8080/tcp`; `53/UDP` → `53/udp`. */
export function normalisePort(p: string | number): string {
  const s = String(p).toLowerCase();
  return s.includes('/') ? s : `${s}/tcp`;
}

const UNIT_NS: Record<string, number> = { ns: 1, us: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Go-style duration (`1m30s`, `500ms`) to nanoseconds; undefined when malformed. */
export function parseDuration(s: string): number | undefined {
  const re = /([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * UNIT_NS[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === s.length && s.length > 0 ? Math.round(total) : undefined;
}

/** Stringifies the scalar values of a YAML map (numbers and booleans as written). */
export function stringMap(m: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m ?? {})) out[k] = String(v);
  return out;
}

/** A health check step from its parts (test already in config form). */
export function healthcheckStep(test: readonly string[], opts: { interval?: number; timeout?: number; startPeriod?: number; startInterval?: number; retries?: number } = {}): HealthcheckStep {
  return { kind: 'healthcheck', test: [...test], interval: opts.interval ?? 0, timeout: opts.timeout ?? 0, startPeriod: opts.startPeriod ?? 0, startInterval: opts.startInterval ?? 0, retries: opts.retries ?? 0 };
}

/** Resolves a `copy --from` / `from:` name: a known image key wins, else a reference. */
export type CopyFromResolver = (name: string) => CopyFrom | undefined;

/** Context needed to normalise YAML steps. */
export interface StepContext {
  /** Absolute directory of the spec file (secret `src` paths resolve here). */
  readonly specDir: string;
  readonly resolveFrom: CopyFromResolver;
}

/** A YAML step after schema validation, as a loose record. */
export type RawStep = Record<string, unknown>;

/**
 * Normalises one schema-valid YAML step. Returns the step, or a message about the member that
 * cannot be resolved (`from` naming nothing); the caller locates it.
 */
export function stepFromYaml(raw: RawStep, ctx: StepContext): { step: Step } | { problem: string; key: string } {
  if ('run' in raw) {
    const run = raw.run as string | string[];
    const secrets: SecretMount[] = ((raw.secrets as Record<string, unknown>[] | undefined) ?? []).map((s) => ({
      id: String(s.id),
      src: typeof s.src === 'string' ? posix.resolve(ctx.specDir, s.src) : undefined,
      env: typeof s.env === 'string' ? s.env : undefined,
      target: typeof s.target === 'string' ? s.target : defaultSecretTarget(String(s.id)),
      required: s.required !== false,
    }));
    return {
      step: {
        kind: 'run',
        form: typeof run === 'string' ? 'shell' : 'exec',
        command: typeof run === 'string' ? [run] : [...run],
        env: stringMap(raw.env as Record<string, unknown> | undefined),
        network: (raw.network as 'none' | 'host' | undefined) ?? 'none',
        secrets,
      },
    };
  }
  if ('copy' in raw || 'add' in raw) {
    const kind = 'copy' in raw ? 'copy' : 'add';
    const src = raw[kind] as string | string[];
    let from: CopyFrom | undefined;
    if (typeof raw.from === 'string') {
      from = ctx.resolveFrom(raw.from);
      if (!from) return { problem: `copy from "${raw.from}" names no image of this file and is not a valid reference`, key: 'from' };
    }
    if (raw.chmod !== undefined && !/^[0-7]{3,4}$/.test(String(raw.chmod))) return { problem: `chmod ${String(raw.chmod)} is not an octal mode such as 0755`, key: 'chmod' };
    return {
      step: {
        kind,
        src: typeof src === 'string' ? [src] : [...src],
        to: String(raw.to),
        chown: raw.chown === undefined ? undefined : String(raw.chown),
        chmod: raw.chmod === undefined ? undefined : normaliseMode(raw.chmod as string | number),
        from,
      },
    };
  }
  if ('env' in raw) return { step: { kind: 'env', vars: stringMap(raw.env as Record<string, unknown>) } };
  if ('workdir' in raw) return { step: { kind: 'workdir', path: String(raw.workdir) } };
  if ('user' in raw) return { step: { kind: 'user', user: String(raw.user) } };
  if ('label' in raw) return { step: { kind: 'label', labels: stringMap(raw.label as Record<string, unknown>) } };
  if ('expose' in raw) {
    const e = raw.expose as string | number | (string | number)[];
    return { step: { kind: 'expose', ports: (Array.isArray(e) ? e : [e]).map(normalisePort) } };
  }
  if ('volume' in raw) {
    const v = raw.volume as string | string[];
    return { step: { kind: 'volume', paths: typeof v === 'string' ? [v] : [...v] } };
  }
  if ('shell' in raw) return { step: { kind: 'shell', argv: [...(raw.shell as string[])] } };
  if ('stopsignal' in raw) return { step: { kind: 'stopsignal', signal: String(raw.stopsignal) } };
  if ('healthcheck' in raw) {
    const h = raw.healthcheck as 'none' | Record<string, unknown>;
    if (h === 'none') return { step: healthcheckStep(['NONE']) };
    const t = h.test as string | string[];
    const dur = (k: string) => (typeof h[k] === 'string' ? parseDuration(h[k] as string) : undefined);
    return {
      step: healthcheckStep(typeof t === 'string' ? ['CMD-SHELL', t] : ['CMD', ...t], {
        interval: dur('interval'),
        timeout: dur('timeout'),
        startPeriod: dur('startPeriod'),
        startInterval: dur('startInterval'),
        retries: typeof h.retries === 'number' ? h.retries : undefined,
      }),
    };
  }
  throw new Error(`schema-valid step with no known kind: ${Object.keys(raw).join(', ')}`);
}

/** `755` / `0755` / 493 (YAML octal-less number) → `0755`. */
export function normaliseMode(m: string | number): string {
  const s = String(m);
  return s.length === 3 ? `0${s}` : s;
}

/**
 * The stable, JSON-able form of a step for cache keys: all fields present (absent optional ones
 * as null); secrets by id and mount point only, never by where their value comes from. Serialise
 * it with `canonicalStepJson` (sorted keys) before hashing.
 */
export function canonicalStep(step: Step): Record<string, unknown> {
  const base: Record<string, unknown> = { ...step };
  if (step.kind === 'copy' || step.kind === 'add') {
    base.chown = step.chown ?? null;
    base.chmod = step.chmod ?? null;
    base.from = step.from ?? null;
  }
  if (step.kind === 'run') {
    base.secrets = step.secrets.map((s) => ({ id: s.id, target: s.target, required: s.required }));
  }
  return base;
}

/** `canonicalStep` as canonical JSON text: equal steps give equal strings. */
export function canonicalStepJson(step: Step): string {
  return canonicalJson(canonicalStep(step));
}
