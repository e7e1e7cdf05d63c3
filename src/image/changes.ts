/**
 * Dockerfile-style config changes, as `docker import --change` / `docker commit --change` accept them:
 * CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR. Each change is one
 * instruction line applied in order to a container config. No variable expansion is done.
 */
import { posix } from 'node:path';
import { DimgError } from '../errors.js';
import type { ContainerConfig } from '../oci/types.js';

/** The instructions a change may use. */
export const CHANGE_INSTRUCTIONS = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR'] as const;

/**
 * Applies `changes` to a copy of `config` and returns it. Throws CHANGE_INVALID naming the change
 * for an unknown instruction or malformed arguments.
 */
export function applyChanges(config: ContainerConfig, changes: readonly string[]): ContainerConfig {
  const out: ContainerConfig = structuredClone(config);
  for (const change of changes) applyOne(out, change);
  return out;
}

function applyOne(c: ContainerConfig, change: string): void {
  const m = /^\s*([A-Za-z]+)(?:\s+([\s\S]*))?$/.exec(change);
  const bad = (why: string) =>
    new DimgError('CHANGE_INVALID', `invalid --change "${change}": ${why}`, `use one of ${CHANGE_INSTRUCTIONS.join(', ')} followed by its arguments, e.g. --change 'CMD ["/bin/sh"]'`);
  if (!m) throw bad('expected an instruction and its arguments');
  const instr = m[1]!.toUpperCase();
  const args = (m[2] ?? '').trim();
  if (args === '' && instr !== 'CMD' && instr !== 'ENTRYPOINT') throw bad(`${instr} needs an argument`);
  switch (instr) {
    case 'CMD':
      c.Cmd = commandForm(args, bad);
      return;
    case 'ENTRYPOINT':
      c.Entrypoint = commandForm(args, bad);
      return;
    case 'ENV': {
      const env = [...(c.Env ?? [])];
      for (const [k, v] of keyValues(args, bad)) {
        const i = env.findIndex((e) => e.split('=', 1)[0] === k);
        if (i >= 0) env[i] = `${k}=${v}`;
        else env.push(`${k}=${v}`);
      }
      c.Env = env;
      return;
    }
    case 'LABEL': {
      const labels = { ...(c.Labels ?? {}) };
      for (const [k, v] of keyValues(args, bad)) labels[k] = v;
      c.Labels = labels;
      return;
    }
    case 'EXPOSE': {
      const ports = { ...(c.ExposedPorts ?? {}) };
      for (const p of words(args, bad)) for (const key of portKeys(p, bad)) ports[key] = {};
      c.ExposedPorts = ports;
      return;
    }
    case 'VOLUME': {
      const vols = { ...(c.Volumes ?? {}) };
      const list = args.startsWith('[') ? jsonArray(args, bad) : words(args, bad);
      for (const v of list) {
        if (v === '') throw bad('a volume path is empty');
        vols[v] = {};
      }
      c.Volumes = vols;
      return;
    }
    case 'WORKDIR':
      c.WorkingDir = posix.resolve(c.WorkingDir || '/', single(args, bad));
      return;
    case 'USER':
      c.User = single(args, bad);
      return;
    case 'STOPSIGNAL': {
      const sig = single(args, bad);
      if (!/^(SIG[A-Z0-9+-]+|\d+)$/.test(sig)) throw bad(`"${sig}" is not a signal name (SIGTERM) or number`);
      c.StopSignal = sig;
      return;
    }
    case 'ONBUILD':
      c.OnBuild = [...(c.OnBuild ?? []), args];
      return;
    default:
      throw bad(`${instr} is not supported here`);
  }
}

/** Exec form (JSON array) or shell form (wrapped in /bin/sh -c), as in a Dockerfile. */
function commandForm(args: string, bad: (why: string) => Error): string[] {
  if (args === '') return [];
  if (args.startsWith('[')) {
    try {
      return jsonArray(args, bad);
    } catch {
      /* not valid JSON: Docker then treats it as shell form */
    }
  }
  return ['/bin/sh', '-c', args];
}

function jsonArray(args: string, bad: (why: string) => Error): string[] {
  let v: unknown;
  try {
    v = JSON.parse(args);
  } catch {
    throw bad('not a valid JSON array');
  }
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw bad('expected a JSON array of strings');
  return v as string[];
}

function single(args: string, bad: (why: string) => Error): string {
  const w = words(args, bad);
  if (w.length !== 1) throw bad('expected exactly one argument');
  return w[0]!;
}

/** `K=V K2="a b"` pairs, or the legacy single `K V…` form. */
function keyValues(args: string, bad: (why: string) => Error): [string, string][] {
  const first = args.split(/\s/, 1)[0]!;
  if (!first.includes('=')) {
    const rest = args.slice(first.length).trim();
    if (rest === '') throw bad(`"${first}" has no value (use KEY=VALUE)`);
    return [[first, unquote(rest, bad)]];
  }
  return words(args, bad).map((w) => {
    const i = w.indexOf('=');
    if (i <= 0) throw bad(`"${w}" is not KEY=VALUE`);
    return [w.slice(0, i), w.slice(i + 1)];
  });
}

/** Splits on unquoted whitespace, removing quotes and backslash escapes like a Dockerfile does. */
function words(args: string, bad: (why: string) => Error): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const ch = args[i]!;
    if (quote) {
      if (ch === quote) quote = undefined;
      else if (ch === '\\' && quote === '"' && i + 1 < args.length) cur += args[++i];
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (ch === '\\' && i + 1 < args.length) {
      cur += args[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (quote) throw bad(`unterminated ${quote} quote`);
  if (inWord) out.push(cur);
  return out;
}

function unquote(s: string, bad: (why: string) => Error): string {
  return /^["']/.test(s) ? words(s, bad).join(' ') : s;
}

/** `80`, `80/udp`, `8000-8002/tcp` → `80/tcp`… keys. */
function portKeys(p: string, bad: (why: string) => Error): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
  if (!m) throw bad(`"${p}" is not a port (80, 80/udp, 8000-8002)`);
  const from = Number(m[1]);
  const to = m[2] ? Number(m[2]) : from;
  if (from < 1 || to > 65535 || to < from) throw bad(`port range "${p}" is out of bounds`);
  const proto = (m[3] ?? 'tcp').toLowerCase();
  const out: string[] = [];
  for (let n = from; n <= to; n++) out.push(`${n}/${proto}`);
  return out;
}
