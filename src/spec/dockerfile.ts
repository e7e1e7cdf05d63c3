/**
 * The Dockerfile frontend: compiles a Dockerfile into the same canonical steps as the YAML, one
 * stage per FROM. The final stage (or `target`) becomes the image itself; every earlier stage it
 * needs (as its base or through `COPY --from`) becomes an intermediate image keyed `KEY~STAGE`
 * (`KEY~0`, `KEY~1`… for unnamed stages), so the builder builds stages like any other image and
 * caches them the same way. Stages nothing needs are dropped, as BuildKit does.
 *
 * Names in `FROM` and `COPY --from` resolve to an earlier stage, then `scratch`, then an image of
 * the spec, then a registry reference (Docker's rule: a bare `alpine` is Docker Hub's).
 */
import { parseReference, formatReference } from '../oci/reference.js';
import { isDimgError } from '../errors.js';
import type { BaseSpec, CopyFrom, SecretMount, Step } from './model.js';
import { parseDockerfile, processWord, processWords, splitRawWords, WordError, type Instruction } from './dockerfile-parse.js';
import { DEFAULT_SHELL, defaultSecretTarget, healthcheckStep, normalisePort, parseDuration } from './steps.js';
import { SourceText } from './source-text.js';
import { didYouMean, type Problem } from './problems.js';

/** What `compileDockerfile` needs. */
export interface CompileDockerfileOptions {
  /** The Dockerfile's text. */
  readonly text: string;
  /** The Dockerfile as shown in messages. */
  readonly file: string;
  /** Key of the resulting image; intermediate stages are `KEY~STAGE`. */
  readonly key: string;
  /** Build args (`args:` / `--build-arg`), overriding ARG defaults. */
  readonly args?: Readonly<Record<string, string>>;
  /** Stage to build; default the last. */
  readonly target?: string;
  /** `os/arch[/variant]` for the automatic TARGETPLATFORM/TARGETOS/TARGETARCH/TARGETVARIANT args. */
  readonly platform?: string;
  /** Images of the surrounding spec that FROM and COPY --from may name. */
  readonly imageKeys?: ReadonlySet<string>;
}

/** One compiled stage. */
export interface DockerfileStage {
  readonly key: string;
  /** The `AS` name, when given. */
  readonly name?: string;
  readonly index: number;
  readonly from: BaseSpec;
  readonly steps: readonly Step[];
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  /** 1-based line of the stage's FROM. */
  readonly line: number;
  /** 1-based line of the instruction each step came from (parallel to `steps`). */
  readonly stepLines: readonly number[];
  /** Keys of images this stage builds on or copies from (stages or spec images). */
  readonly deps: readonly string[];
  /** True for the stage that is the requested image. */
  readonly final: boolean;
}

/** The result: the needed stages in build order (the final one last) and every problem found. */
export interface CompiledDockerfile {
  readonly stages: readonly DockerfileStage[];
  readonly problems: readonly Problem[];
}

const STAGE_NAME = /^[a-z][a-z0-9._-]*$/;
const KNOWN = ['FROM', 'RUN', 'COPY', 'ADD', 'ENV', 'ARG', 'WORKDIR', 'USER', 'LABEL', 'EXPOSE', 'VOLUME', 'CMD', 'ENTRYPOINT', 'SHELL', 'STOPSIGNAL', 'HEALTHCHECK', 'MAINTAINER', 'ONBUILD'];
const FLAGS: Record<string, readonly string[]> = {
  FROM: ['platform'],
  RUN: ['mount', 'network'],
  COPY: ['from', 'chown', 'chmod', 'link'],
  ADD: ['chown', 'chmod', 'link'],
  HEALTHCHECK: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
};

interface StageState {
  name?: string;
  index: number;
  line: number;
  from: BaseSpec;
  deps: Set<string>;
  steps: Step[];
  stepLines: number[];
  entrypoint?: string[];
  cmd?: string[];
  /** ARGs declared in this stage with their values (undefined: declared without a value). */
  args: Map<string, string | undefined>;
  env: Map<string, string>;
  shell: readonly string[];
}

/** Compiles a Dockerfile. Never throws for user errors: they come back as located problems. */
export function compileDockerfile(opts: CompileDockerfileOptions): CompiledDockerfile {
  const src = new SourceText(opts.file, opts.text);
  const parsed = parseDockerfile(opts.text);
  const problems: Problem[] = parsed.problems.map((p) => src.problemAtLine(p.line, p.col, p.message));
  const esc = parsed.escape;
  const buildArgs = opts.args ?? {};
  const globalArgs = new Map<string, string | undefined>();
  const automatic = platformArgs(opts.platform);
  const stages: StageState[] = [];
  let stage: StageState | undefined;

  const fail = (inst: Instruction, message: string) => problems.push(src.problemAtLine(inst.line, 1, `${inst.keyword}: ${message}`, inst.keyword.length));
  const varsOf = (st: StageState | undefined): Map<string, string> => {
    const vars = new Map<string, string>();
    if (!st) {
      for (const [k, v] of automatic) vars.set(k, v);
      for (const [k, v] of globalArgs) if (v !== undefined) vars.set(k, v);
      return vars;
    }
    for (const [k, v] of st.args) if (v !== undefined) vars.set(k, v);
    for (const [k, v] of st.env) vars.set(k, v);
    return vars;
  };
  const word = (inst: Instruction, s: string, keepUnknown = false): string | undefined => {
    try {
      return processWord(s, varsOf(stage), esc, keepUnknown);
    } catch (e) {
      if (e instanceof WordError) fail(inst, e.message);
      else throw e;
      return undefined;
    }
  };
  const words = (inst: Instruction, s: string): string[] | undefined => {
    try {
      return processWords(s, varsOf(stage), esc);
    } catch (e) {
      if (e instanceof WordError) fail(inst, e.message);
      else throw e;
      return undefined;
    }
  };
  const resolveName = (name: string, allowStages: boolean): { base: BaseSpec; dep?: string } | undefined => {
    if (allowStages) {
      const byName = stages.find((s) => s.name === name.toLowerCase());
      if (byName) return { base: { kind: 'image', key: stageKey(opts.key, byName) }, dep: stageKey(opts.key, byName) };
    }
    if (name === 'scratch') return { base: { kind: 'scratch' } };
    if (opts.imageKeys?.has(name)) return { base: { kind: 'image', key: name }, dep: name };
    try {
      return { base: { kind: 'ref', ref: formatReference(parseReference(name)) } };
    } catch (e) {
      if (isDimgError(e, 'REFERENCE_INVALID')) return undefined;
      throw e;
    }
  };

  for (const inst of parsed.instructions) {
    const allowed = FLAGS[inst.keyword] ?? [];
    if (!KNOWN.includes(inst.keyword)) {
      fail(inst, `unknown instruction${didYouMean(inst.keyword, KNOWN)}`);
      continue;
    }
    const badFlag = inst.flags.find((f) => !allowed.includes(f.name));
    if (badFlag) {
      fail(inst, `the flag --${badFlag.name} is not supported${allowed.length ? ` (supported: ${allowed.map((f) => `--${f}`).join(', ')})` : ''}`);
      continue;
    }
    if (inst.keyword === 'ARG' && !stage) {
      for (const [k, v] of argDecls(inst, (s) => word(inst, s))) globalArgs.set(k, buildArgs[k] ?? v);
      continue;
    }
    if (inst.keyword === 'FROM') {
      // FROM sees only the global ARGs (and the automatic platform ones).
      stage = undefined;
      const parts = (words(inst, inst.args) ?? []).filter((w) => w !== '');
      const m = parts.length === 1 || (parts.length === 3 && parts[1]!.toLowerCase() === 'as');
      if (!m) {
        fail(inst, 'expected "FROM IMAGE [AS NAME]"');
        // Keep a stage so the instructions below are still checked, without cascading errors.
        stage = { index: stages.length, line: inst.line, from: { kind: 'scratch' }, deps: new Set(), steps: [], stepLines: [], args: new Map(), env: new Map(), shell: DEFAULT_SHELL };
        stages.push(stage);
        continue;
      }
      const name = parts[2]?.toLowerCase();
      if (name !== undefined && !STAGE_NAME.test(name)) fail(inst, `invalid stage name "${parts[2]}" (letters, digits, ".", "_" and "-", starting with a letter)`);
      if (name !== undefined && stages.some((s) => s.name === name)) fail(inst, `duplicate stage name "${name}"`);
      const r = resolveName(parts[0]!, true);
      if (!r) fail(inst, `"${parts[0]}" is not a valid image reference or stage name`);
      stage = { name, index: stages.length, line: inst.line, from: r?.base ?? { kind: 'scratch' }, deps: new Set(r?.dep ? [r.dep] : []), steps: [], stepLines: [], args: new Map(), env: new Map(), shell: DEFAULT_SHELL };
      stages.push(stage);
      continue;
    }
    if (!stage) {
      fail(inst, 'only ARG may come before the first FROM');
      continue;
    }
    const st = stage;
    const before = st.steps.length;
    const flag = (name: string) => inst.flags.find((f) => f.name === name)?.value;
    switch (inst.keyword) {
      case 'ARG':
        for (const [k, v] of argDecls(inst, (s) => word(inst, s))) {
          // `ARG NAME` in a stage re-imports a global ARG's value.
          st.args.set(k, buildArgs[k] ?? v ?? globalArgs.get(k) ?? automatic.get(k));
        }
        break;
      case 'RUN': {
        const step = runStep(inst, st, fail);
        if (step) st.steps.push(step);
        break;
      }
      case 'COPY':
      case 'ADD': {
        const list = inst.json ? inst.json.map((w) => word(inst, w) ?? '') : words(inst, inst.args);
        if (!list) break;
        if (list.length < 2) {
          fail(inst, `needs at least one source and a destination`);
          break;
        }
        const srcs = list.slice(0, -1);
        const to = list.at(-1)!;
        if (inst.keyword === 'ADD') {
          const remote = srcs.find((s) => /^[a-z][a-z0-9+.-]*:\/\//i.test(s) || s.startsWith('git@'));
          if (remote) {
            fail(inst, `ADD of a URL or git repository (${remote}) is not supported; download it in a RUN step or put it in the context`);
            break;
          }
        }
        let from: CopyFrom | undefined;
        const fromFlag = flag('from');
        if (fromFlag !== undefined) {
          const name = word(inst, fromFlag) ?? fromFlag;
          const byIndex = /^[0-9]+$/.test(name) ? stages[Number(name)] : undefined;
          if (byIndex && byIndex !== st) {
            from = { kind: 'image', key: stageKey(opts.key, byIndex) };
          } else {
            const r = resolveName(name, true);
            if (!r || r.base.kind === 'scratch') {
              fail(inst, `--from=${name} names no earlier stage and is not a valid image reference`);
              break;
            }
            from = r.base as CopyFrom;
          }
          if (from.kind === 'image') st.deps.add(from.key);
        }
        const chmod = flag('chmod');
        if (chmod !== undefined && !/^[0-7]{3,4}$/.test(chmod)) {
          fail(inst, `--chmod=${chmod} is not an octal mode such as 0755`);
          break;
        }
        const chown = flag('chown');
        st.steps.push({
          kind: inst.keyword === 'COPY' ? 'copy' : 'add',
          src: srcs,
          to,
          chown: chown === undefined ? undefined : word(inst, chown),
          chmod: chmod === undefined ? undefined : chmod.length === 3 ? `0${chmod}` : chmod,
          from,
        });
        break;
      }
      case 'ENV':
      case 'LABEL': {
        const pairs = nameValues(inst, (s) => word(inst, s, inst.keyword === 'ENV'), inst.keyword === 'ENV', esc);
        if (!pairs) {
          fail(inst, `expected ${inst.keyword} NAME=VALUE [NAME=VALUE...]`);
          break;
        }
        const rec: Record<string, string> = {};
        for (const [k, v] of pairs) {
          rec[k] = v;
          if (inst.keyword === 'ENV') st.env.set(k, v);
        }
        st.steps.push(inst.keyword === 'ENV' ? { kind: 'env', vars: rec } : { kind: 'label', labels: rec });
        break;
      }
      case 'MAINTAINER': {
        // Deprecated in Docker; kept as the label Docker recommends instead.
        st.steps.push({ kind: 'label', labels: { maintainer: word(inst, inst.args) ?? inst.args } });
        break;
      }
      case 'WORKDIR':
      case 'USER':
      case 'STOPSIGNAL': {
        const v = word(inst, inst.args.trim());
        if (!v) {
          fail(inst, 'needs a value');
          break;
        }
        if (inst.keyword === 'WORKDIR') st.steps.push({ kind: 'workdir', path: v });
        else if (inst.keyword === 'USER') st.steps.push({ kind: 'user', user: v });
        else st.steps.push({ kind: 'stopsignal', signal: v });
        break;
      }
      case 'EXPOSE': {
        const ports = words(inst, inst.args);
        if (!ports || ports.length === 0) {
          fail(inst, 'needs at least one port');
          break;
        }
        const bad = ports.find((p) => !/^[0-9]{1,5}(-[0-9]{1,5})?(\/(tcp|udp|sctp))?$/i.test(p));
        if (bad) {
          fail(inst, `"${bad}" is not a port such as 8080, 8080/udp or 8000-8010/tcp`);
          break;
        }
        st.steps.push({ kind: 'expose', ports: ports.map(normalisePort) });
        break;
      }
      case 'VOLUME': {
        const paths = inst.json ? inst.json.map((w) => word(inst, w) ?? '') : words(inst, inst.args);
        if (!paths || paths.length === 0 || paths.some((p) => p === '')) {
          fail(inst, 'needs at least one path');
          break;
        }
        st.steps.push({ kind: 'volume', paths });
        break;
      }
      case 'SHELL':
        if (!inst.json || inst.json.length === 0) {
          fail(inst, 'must be written in JSON form, e.g. SHELL ["/bin/sh", "-c"]');
          break;
        }
        st.shell = [...inst.json];
        st.steps.push({ kind: 'shell', argv: [...inst.json] });
        break;
      case 'CMD':
      case 'ENTRYPOINT': {
        const argv = inst.json ? [...inst.json] : [...st.shell, inst.args];
        if (inst.keyword === 'CMD') st.cmd = argv;
        else st.entrypoint = argv;
        break;
      }
      case 'HEALTHCHECK': {
        const step = healthcheck(inst, fail);
        if (step) st.steps.push(step);
        break;
      }
      case 'ONBUILD':
        fail(inst, 'ONBUILD is not supported (it only affects images built later FROM this one)');
        break;
    }
    for (let n = before; n < st.steps.length; n++) st.stepLines.push(inst.line);
  }

  if (stages.length === 0 && problems.length === 0) problems.push(src.problemAtLine(1, 1, 'the Dockerfile has no FROM instruction'));
  let finalStage = stages.at(-1);
  if (opts.target !== undefined) {
    finalStage = stages.find((s) => s.name === opts.target!.toLowerCase());
    if (!finalStage) {
      problems.push(src.problemAtLine(1, 1, `target stage "${opts.target}" is not defined${didYouMean(opts.target, stages.flatMap((s) => (s.name ? [s.name] : [])))}`));
    }
  }
  if (!finalStage) return { stages: [], problems };
  return { stages: reachable(opts.key, stages, finalStage), problems };
}

function stageKey(key: string, st: { name?: string; index: number }): string {
  return `${key}~${st.name ?? st.index}`;
}

/** The stages the final one needs, in file order, with their keys; the final one gets `key`. */
function reachable(key: string, stages: StageState[], final: StageState): DockerfileStage[] {
  const keyOf = new Map(stages.map((s) => [stageKey(key, s), s]));
  const need = new Set<StageState>([final]);
  const queue = [final];
  while (queue.length > 0) {
    for (const d of queue.pop()!.deps) {
      const s = keyOf.get(d);
      if (s && !need.has(s)) {
        need.add(s);
        queue.push(s);
      }
    }
  }
  const finalKey = stageKey(key, final);
  const rename = (k: string) => (k === finalKey ? key : k);
  return stages
    .filter((s) => need.has(s))
    .map((s) => ({
      key: s === final ? key : stageKey(key, s),
      name: s.name,
      index: s.index,
      from: s.from.kind === 'image' ? { kind: 'image', key: rename(s.from.key) } : s.from,
      steps: s.steps.map((step) => (step.kind === 'copy' && step.from?.kind === 'image' ? { ...step, from: { kind: 'image', key: rename(step.from.key) } } : step)),
      entrypoint: s.entrypoint,
      cmd: s.cmd,
      line: s.line,
      stepLines: s.stepLines,
      deps: [...s.deps].map(rename),
      final: s === final,
    }));
}

function platformArgs(platform: string | undefined): Map<string, string> {
  const m = new Map<string, string>();
  if (!platform) return m;
  const [os, arch, variant] = platform.split('/');
  m.set('TARGETPLATFORM', platform);
  m.set('TARGETOS', os ?? '');
  m.set('TARGETARCH', arch ?? '');
  m.set('TARGETVARIANT', variant ?? '');
  m.set('BUILDPLATFORM', platform);
  m.set('BUILDOS', os ?? '');
  m.set('BUILDARCH', arch ?? '');
  m.set('BUILDVARIANT', variant ?? '');
  return m;
}

/** `ARG A=1 B C="x y"` → [[A,'1'],[B,undefined],[C,'x y']]. */
function argDecls(inst: Instruction, word: (s: string) => string | undefined): [string, string | undefined][] {
  return splitRawWords(inst.args).map((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) return [w, undefined];
    return [w.slice(0, eq), word(w.slice(eq + 1))];
  });
}

/** ENV/LABEL arguments: `K=V ...`, or the legacy `ENV K V with spaces`. */
function nameValues(inst: Instruction, word: (s: string) => string | undefined, legacy: boolean, esc: string): [string, string][] | undefined {
  const raw = splitRawWords(inst.args, esc);
  if (raw.length === 0) return undefined;
  if (!raw[0]!.includes('=')) {
    if (!legacy || raw.length < 2) return undefined;
    const rest = inst.args.trim().slice(raw[0]!.length).trim();
    return [[raw[0]!, word(rest) ?? rest]];
  }
  const out: [string, string][] = [];
  for (const w of raw) {
    const eq = w.indexOf('=');
    if (eq <= 0) return undefined;
    out.push([word(w.slice(0, eq)) ?? w.slice(0, eq), word(w.slice(eq + 1)) ?? '']);
  }
  return out;
}

function runStep(inst: Instruction, st: StageState, fail: (i: Instruction, m: string) => void): Step | undefined {
  const secrets: SecretMount[] = [];
  let network: 'none' | 'host' = 'none';
  for (const f of inst.flags) {
    if (f.name === 'network') {
      if (f.value === 'host') network = 'host';
      else if (f.value === 'none' || f.value === 'default') network = 'none';
      else return void fail(inst, `--network=${f.value ?? ''} is not supported (none, host or default)`);
    } else if (f.name === 'mount') {
      const opts = new Map((f.value ?? '').split(',').map((kv) => {
        const eq = kv.indexOf('=');
        return (eq < 0 ? [kv, 'true'] : [kv.slice(0, eq), kv.slice(eq + 1)]) as [string, string];
      }));
      const type = opts.get('type') ?? 'bind';
      if (type !== 'secret') return void fail(inst, `--mount=type=${type} is not supported (only type=secret)`);
      const target = opts.get('target') ?? opts.get('dst') ?? opts.get('destination');
      const id = opts.get('id') ?? (target ? target.split('/').at(-1) : undefined);
      if (!id) return void fail(inst, '--mount=type=secret needs id=ID');
      const unknown = [...opts.keys()].find((k) => !['type', 'id', 'target', 'dst', 'destination', 'required', 'mode', 'uid', 'gid', 'env'].includes(k));
      if (unknown) return void fail(inst, `--mount option "${unknown}" is not supported for secrets`);
      if (opts.has('env')) return void fail(inst, '--mount=type=secret,env=… is not supported; mount the secret as a file');
      secrets.push({ id, target: target ?? defaultSecretTarget(id), required: opts.get('required') === 'true' });
    }
  }
  // Build args are visible to RUN as environment variables (unless an ENV of the same name wins).
  const env: Record<string, string> = {};
  for (const [k, v] of st.args) if (v !== undefined && !st.env.has(k)) env[k] = v;
  if (inst.json) return { kind: 'run', form: 'exec', command: [...inst.json], env, network, secrets };
  if (inst.args.trim() === '') return void fail(inst, 'needs a command');
  return { kind: 'run', form: 'shell', command: [inst.args], env, network, secrets };
}

function healthcheck(inst: Instruction, fail: (i: Instruction, m: string) => void): Step | undefined {
  const args = inst.args.trim();
  if (/^NONE$/i.test(args)) return healthcheckStep(['NONE']);
  const m = /^CMD\s+([\s\S]+)$/i.exec(args);
  if (!m) return void fail(inst, 'expected HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE');
  const rest = m[1]!.trim();
  let json: string[] | undefined;
  if (rest.startsWith('[')) {
    try {
      const v = JSON.parse(rest) as unknown;
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) json = v as string[];
    } catch {
      json = undefined;
    }
  }
  const opts: Record<string, number> = {};
  for (const f of inst.flags) {
    if (f.name === 'retries') {
      if (!/^[0-9]+$/.test(f.value ?? '')) return void fail(inst, `--retries=${f.value ?? ''} is not a whole number`);
      opts.retries = Number(f.value);
    } else {
      const ns = parseDuration(f.value ?? '');
      if (ns === undefined) return void fail(inst, `--${f.name}=${f.value ?? ''} is not a duration such as 30s`);
      opts[f.name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = ns;
    }
  }
  return healthcheckStep(json ? ['CMD', ...json] : ['CMD-SHELL', rest], opts);
}
