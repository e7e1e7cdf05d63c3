/**
 * Dockerfile frontend, stage 4 of 4 (parse → typed instructions → expansion → compile): turns each
 * expanded instruction into the spec model's steps on its stage, opens stages at FROM and records
 * what each stage depends on in the `StageGraph`. Checks that need expanded values (path counts,
 * ports, `--from` names, modes) are made here.
 */
import type { CopyFrom, Step } from './model.js';
import { DEFAULT_SHELL, healthcheckStep, normalisePort } from './steps.js';
import type { ExpandedCopy, ExpandedFrom, ExpandedInstruction, ExpandedList, ExpandedPairs, ExpandedValue, Scope } from './dockerfile-expand.js';
import type { StageGraph, StageState } from './dockerfile-stages.js';

/** What compiling an instruction reads and writes besides its stage. */
export interface CompileContext {
  readonly graph: StageGraph;
  readonly scope: Scope;
  /** Reports a problem at the instruction being compiled. */
  readonly fail: (message: string) => void;
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
export function compileArg(e: Extract<ExpandedInstruction, { kind: 'ARG' }>, ctx: CompileContext): void {
  for (const [name, value] of e.decls) ctx.scope.declareArg(name, value);
}

/** Compiles an instruction of a stage (anything but FROM and ARG) into its steps, entrypoint or cmd. */
export function compileInstruction(e: Exclude<ExpandedInstruction, { kind: 'FROM' | 'ARG' }>, st: StageState, ctx: CompileContext): void {
  const add = (step: Step | undefined) => {
    if (!step) return;
    st.steps.push(step);
    st.stepLines.push(e.line);
  };
  switch (e.kind) {
    case 'RUN':
      return add({ kind: 'run', form: 'json' in e.form ? 'exec' : 'shell', command: 'json' in e.form ? [...e.form.json] : [e.form.shell], env: ctx.scope.runEnv(), network: e.network, secrets: e.secrets });
    case 'COPY':
    case 'ADD':
      return add(copyStep(e, st, ctx));
    case 'ENV':
    case 'LABEL':
      return add(pairsStep(e, ctx));
    case 'MAINTAINER':
      // Deprecated in Docker; kept as the label Docker recommends instead.
      return add({ kind: 'label', labels: { maintainer: e.value } });
    case 'WORKDIR':
    case 'USER':
    case 'STOPSIGNAL':
      return add(valueStep(e, ctx));
    case 'EXPOSE':
    case 'VOLUME':
      return add(listStep(e, ctx));
    case 'SHELL':
      st.shell = [...e.argv];
      return add({ kind: 'shell', argv: [...e.argv] });
    case 'CMD':
    case 'ENTRYPOINT': {
      const argv = 'json' in e.form ? [...e.form.json] : [...st.shell, e.form.shell];
      if (e.kind === 'CMD') st.cmd = argv;
      else st.entrypoint = argv;
      return;
    }
    case 'HEALTHCHECK':
      return add(healthcheckStep(e.test, e.options));
  }
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
function pairsStep(e: ExpandedPairs, ctx: CompileContext): Step {
  const rec: Record<string, string> = {};
  for (const [k, v] of e.pairs) {
    rec[k] = v;
    if (e.kind === 'ENV') ctx.scope.setEnv(k, v);
  }
  return e.kind === 'ENV' ? { kind: 'env', vars: rec } : { kind: 'label', labels: rec };
}

/** WORKDIR, USER or STOPSIGNAL, which need a non-empty value. */
function valueStep(e: ExpandedValue, ctx: CompileContext): Step | undefined {
  const v = e.value;
  if (!v) return void ctx.fail('needs a value');
  if (e.kind === 'WORKDIR') return { kind: 'workdir', path: v };
  if (e.kind === 'USER') return { kind: 'user', user: v };
  return { kind: 'stopsignal', signal: v };
}

/** EXPOSE (ports such as 8080/udp, normalised) or VOLUME (non-empty paths). */
function listStep(e: ExpandedList, ctx: CompileContext): Step | undefined {
  const words = e.words;
  if (e.kind === 'VOLUME') {
    if (!words || words.length === 0 || words.some((p) => p === '')) return void ctx.fail('needs at least one path');
    return { kind: 'volume', paths: [...words] };
  }
  if (!words || words.length === 0) return void ctx.fail('needs at least one port');
  const bad = words.find((p) => !PORT.test(p));
  if (bad) return void ctx.fail(`"${bad}" is not a port such as 8080, 8080/udp or 8000-8010/tcp`);
  return { kind: 'expose', ports: words.map(normalisePort) };
}
