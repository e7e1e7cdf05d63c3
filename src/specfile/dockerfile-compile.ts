/**
 * Dockerfile frontend, stage 4 of 4 (parse → typed instructions → expansion → compile): turns each
 * expanded instruction into the spec model's steps on its stage, opens stages at FROM and records
 * what each stage depends on in the `StageGraph`. Checks that need expanded values (path counts,
 * ports, `--from` names, modes) are made here.
 */
import type { CopyFrom, Step } from './model.js';
import { DEFAULT_SHELL, healthcheckStep, normalisePort } from './steps.js';
import type { OfKind, ExpandedCopy, ExpandedFrom, ExpandedInstruction, ExpandedList, ExpandedPairs, ExpandedValue, Scope } from './dockerfile-expand.js';
import type { StageGraph, StageState } from './dockerfile-stages.js';

/** What compiling an instruction reads and writes besides its stage. */
export interface CompileContext {
  readonly graph: StageGraph;
  readonly scope: Scope;
  /** Reports a problem at the instruction being compiled. */
  readonly fail: (message: string) => void;
  /** Entitlements the build was given (`network.host`). */
  readonly allow: ReadonlySet<string>;
}

const STAGE_NAME = /^[a-z][a-z0-9._-]*$/;
const PORT = /^[0-9]{1,5}(-[0-9]{1,5})?(\/(tcp|udp|sctp))?$/i;
const REMOTE = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * Opens the stage of a FROM (its words already expanded in the global scope) and enters its scope.
 * A malformed FROM still opens a stage, from scratch, so the instructions below are checked without
 * cascading errors.
 */
export function compileFrom(e: ExpandedFrom, ctx: CompileContext): StageState {
  const { graph, fail } = ctx;
  const parts = e.words;
  ctx.scope.enterStage();
  if (!(parts.length === 1 || (parts.length === 3 && parts[1]!.toLowerCase() === 'as'))) {
    fail('expected "FROM IMAGE [AS NAME]"');
    return graph.open({ line: e.line, from: { kind: 'scratch' }, shell: DEFAULT_SHELL });
  }
  const name = parts[2]?.toLowerCase();
  if (name !== undefined && !STAGE_NAME.test(name)) fail(`invalid stage name "${parts[2]}" (letters, digits, ".", "_" and "-", starting with a letter)`);
  if (name !== undefined && graph.hasName(name)) fail(`duplicate stage name "${name}"`);
  const r = graph.resolve(parts[0]!);
  if (!r) fail(`"${parts[0]}" is not a valid image reference or stage name`);
  return graph.open({ name, line: e.line, from: r?.base ?? { kind: 'scratch' }, dep: r?.dep, shell: DEFAULT_SHELL });
}

/** Declares the ARGs of an instruction, in the global scope before the first FROM, else in the stage's. */
export function compileArg(e: OfKind<ExpandedInstruction, 'ARG'>, ctx: CompileContext): void {
  for (const [name, value] of e.decls) ctx.scope.declareArg(name, value);
}

/** An expanded instruction of a stage: anything but FROM and ARG. */
export type StageInstruction = Exclude<ExpandedInstruction, { kind: 'FROM' | 'ARG' }>;

/** How each kind of stage instruction compiles: a step to add (or none), or a change to the stage. */
type Compilers = { readonly [K in StageInstruction['kind']]: (e: OfKind<StageInstruction, K>, st: StageState, ctx: CompileContext) => Step | undefined };

const COMPILERS: Compilers = {
  RUN: (e, _st, ctx) => {
    if (e.network === 'host' && !ctx.allow.has('network.host')) {
      ctx.fail('--network=host needs the network.host entitlement, which only the person building can grant: `dimg image build --allow network.host`, or `allow: [network.host]` on the image in images.yaml');
    }
    return { kind: 'run', form: 'json' in e.form ? 'exec' : 'shell', command: 'json' in e.form ? [...e.form.json] : [e.form.shell], env: ctx.scope.runEnv(), network: e.network, secrets: e.secrets };
  },
  COPY: copyStep,
  ADD: copyStep,
  ENV: pairsStep,
  LABEL: pairsStep,
  // Deprecated in Docker; kept as the label Docker recommends instead.
  MAINTAINER: (e) => ({ kind: 'label', labels: { maintainer: e.value } }),
  WORKDIR: valueStep,
  USER: valueStep,
  STOPSIGNAL: valueStep,
  EXPOSE: exposeStep,
  VOLUME: volumeStep,
  SHELL: (e, st) => {
    st.shell = [...e.argv];
    return { kind: 'shell', argv: [...e.argv] };
  },
  CMD: (e, st) => void (st.cmd = commandArgv(e, st)),
  ENTRYPOINT: (e, st) => void (st.entrypoint = commandArgv(e, st)),
  HEALTHCHECK: (e) => healthcheckStep(e.test, e.options),
};

/**
 * Compiles an instruction of a stage (anything but FROM and ARG) into its step, recorded with the
 * instruction's line, or into the stage's SHELL, CMD or ENTRYPOINT. Problems go to `ctx.fail`.
 */
export function compileInstruction(e: StageInstruction, st: StageState, ctx: CompileContext): void {
  // One table entry per kind; TypeScript cannot correlate `e.kind` with the entry's parameter type.
  const compile = COMPILERS[e.kind] as (e: StageInstruction, st: StageState, ctx: CompileContext) => Step | undefined;
  const step = compile(e, st, ctx);
  if (!step) return;
  st.steps.push(step);
  st.stepLines.push(e.line);
}

/** CMD/ENTRYPOINT's argv: the exec form as written, the shell form through the stage's SHELL. */
function commandArgv(e: OfKind<StageInstruction, 'CMD'>, st: StageState): string[] {
  return 'json' in e.form ? [...e.form.json] : [...st.shell, e.form.shell];
}

/** COPY/ADD: sources and destination, `--from` resolved to a stage or image, `--chmod` normalised. */
function copyStep(e: ExpandedCopy, st: StageState, ctx: CompileContext): Step | undefined {
  const { paths } = e;
  const { fail } = ctx;
  if (!paths) return undefined;
  if (paths.length < 2) return void fail('needs at least one source and a destination');
  const src = paths.slice(0, -1);
  const remote = e.kind === 'ADD' ? src.find((s) => REMOTE.test(s) || s.startsWith('git@')) : undefined;
  if (remote) return void fail(`ADD of a URL or git repository (${remote}) is not supported; download it in a RUN step or put it in the context`);
  let from: CopyFrom | undefined;
  if (e.from !== undefined) {
    from = ctx.graph.resolveCopyFrom(e.from, st);
    if (!from) return void fail(`--from=${e.from} names no earlier stage and is not a valid image reference`);
    if (from.kind === 'image') st.deps.add(from.key);
  }
  const chmod = e.chmod;
  if (chmod !== undefined && !/^[0-7]{3,4}$/.test(chmod)) return void fail(`--chmod=${chmod} is not an octal mode such as 0755`);
  return {
    kind: e.kind === 'COPY' ? 'copy' : 'add',
    src,
    to: paths.at(-1)!,
    chown: e.chown,
    chmod: chmod === undefined ? undefined : chmod.length === 3 ? `0${chmod}` : chmod,
    from,
  };
}

/** ENV (which also sets the variables for the instructions below) or LABEL. */
function pairsStep(e: ExpandedPairs, _st: StageState, ctx: CompileContext): Step {
  const rec: Record<string, string> = {};
  for (const [k, v] of e.pairs) {
    rec[k] = v;
    if (e.kind === 'ENV') ctx.scope.setEnv(k, v);
  }
  return e.kind === 'ENV' ? { kind: 'env', vars: rec } : { kind: 'label', labels: rec };
}

/** WORKDIR, USER or STOPSIGNAL, which need a non-empty value. */
function valueStep(e: ExpandedValue, _st: StageState, ctx: CompileContext): Step | undefined {
  const v = e.value;
  if (!v) return void ctx.fail('needs a value');
  if (e.kind === 'WORKDIR') return { kind: 'workdir', path: v };
  if (e.kind === 'USER') return { kind: 'user', user: v };
  return { kind: 'stopsignal', signal: v };
}

/** EXPOSE: ports such as 8080 or 8000-8010/udp, normalised to PORT/PROTO. */
function exposeStep(e: ExpandedList, _st: StageState, ctx: CompileContext): Step | undefined {
  const words = e.words;
  if (!words || words.length === 0) return void ctx.fail('needs at least one port');
  const bad = words.find((p) => !PORT.test(p));
  if (bad) return void ctx.fail(`"${bad}" is not a port such as 8080, 8080/udp or 8000-8010/tcp`);
  return { kind: 'expose', ports: words.map(normalisePort) };
}

/** VOLUME: one or more non-empty paths. */
function volumeStep(e: ExpandedList, _st: StageState, ctx: CompileContext): Step | undefined {
  const words = e.words;
  if (!words || words.length === 0 || words.some((p) => p === '')) return void ctx.fail('needs at least one path');
  return { kind: 'volume', paths: [...words] };
}
