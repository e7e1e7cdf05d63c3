/**
 * Dockerfile frontend, stage 3 of 4 (parse → typed instructions → expansion → compile): which
 * variables each instruction sees (`Scope`: the automatic platform args, global ARGs before the first
 * FROM, a stage's ARGs and ENVs after it) and the substitution of those variables into a typed
 * instruction's arguments (`expandInstruction`), as BuildKit does before dispatching it.
 */
import { processWord, processWords, WordError } from './dockerfile-words.js';
import type { CopyInstruction, Form, PairsInstruction, TypedInstruction, ValueInstruction } from './dockerfile-instructions.js';

/**
 * The variables in force at one point of a Dockerfile. Outside a stage (before the first FROM and
 * in FROM itself) they are the automatic platform args and the global ARGs; inside a stage, only the
 * ARGs the stage declares and its ENVs (ENV wins over ARG).
 */
export class Scope {
  private readonly globals = new Map<string, string | undefined>();
  private stage: { args: Map<string, string | undefined>; env: Map<string, string> } | undefined;

  /**
   * @param buildArgs `--build-arg`/`args:` values, overriding every ARG default.
   * @param automatic the automatic args (see `platformArgs`), visible outside stages and importable by ARG.
   */
  constructor(
    private readonly buildArgs: Readonly<Record<string, string>>,
    private readonly automatic: ReadonlyMap<string, string>,
  ) {}

  /** Leaves the current stage: FROM sees only the global scope. */
  leaveStage(): void {
    this.stage = undefined;
  }

  /** Starts a new stage with no ARGs or ENVs of its own. */
  enterStage(): void {
    this.stage = { args: new Map(), env: new Map() };
  }

  /** The variables visible now, for word processing. */
  vars(): Map<string, string> {
    const vars = new Map<string, string>();
    if (!this.stage) {
      for (const [k, v] of this.automatic) vars.set(k, v);
      for (const [k, v] of this.globals) if (v !== undefined) vars.set(k, v);
      return vars;
    }
    for (const [k, v] of this.stage.args) if (v !== undefined) vars.set(k, v);
    for (const [k, v] of this.stage.env) vars.set(k, v);
    return vars;
  }

  /**
   * Declares an ARG with its (expanded) default. A build arg overrides it; inside a stage, `ARG NAME`
   * without a default re-imports the global ARG's or the automatic arg's value.
   */
  declareArg(name: string, value: string | undefined): void {
    if (!this.stage) {
      this.globals.set(name, this.buildArgs[name] ?? value);
      return;
    }
    this.stage.args.set(name, this.buildArgs[name] ?? value ?? this.globals.get(name) ?? this.automatic.get(name));
  }

  /** Sets an ENV of the current stage; a no-op outside a stage (ENV is refused there anyway). */
  setEnv(name: string, value: string): void {
    this.stage?.env.set(name, value);
  }

  /** Build args are visible to RUN as environment variables, unless an ENV of the same name wins. */
  runEnv(): Record<string, string> {
    const env: Record<string, string> = {};
    if (!this.stage) return env;
    for (const [k, v] of this.stage.args) if (v !== undefined && !this.stage.env.has(k)) env[k] = v;
    return env;
  }
}

/** The automatic TARGET* and BUILD* args of `os/arch[/variant]` (none without a platform). */
export function platformArgs(platform: string | undefined): Map<string, string> {
  const m = new Map<string, string>();
  if (!platform) return m;
  const [os, arch, variant] = platform.split('/');
  for (const prefix of ['TARGET', 'BUILD']) {
    m.set(`${prefix}PLATFORM`, platform);
    m.set(`${prefix}OS`, os ?? '');
    m.set(`${prefix}ARCH`, arch ?? '');
    m.set(`${prefix}VARIANT`, variant ?? '');
  }
  return m;
}

/** FROM's words after expansion, empty ones dropped (a failed expansion gives none). */
export interface ExpandedFrom {
  readonly kind: 'FROM';
  readonly line: number;
  readonly words: readonly string[];
}
/** ARG declarations with expanded defaults (undefined: none given, or its expansion failed). */
export interface ExpandedArg {
  readonly kind: 'ARG';
  readonly line: number;
  readonly decls: readonly (readonly [string, string | undefined])[];
}
/** COPY/ADD with expanded paths (undefined when their expansion failed), `--from` and `--chown`. */
export interface ExpandedCopy extends Omit<CopyInstruction, 'paths'> {
  readonly paths: readonly string[] | undefined;
}
/** ENV/LABEL pairs after expansion. */
export interface ExpandedPairs {
  readonly kind: 'ENV' | 'LABEL';
  readonly line: number;
  readonly pairs: readonly (readonly [string, string])[];
}
/** A single value after expansion; undefined when its expansion failed. */
export interface ExpandedValue {
  readonly kind: 'WORKDIR' | 'USER' | 'STOPSIGNAL';
  readonly line: number;
  readonly value: string | undefined;
}
/** MAINTAINER's name after expansion (as written when its expansion failed). */
export interface ExpandedMaintainer {
  readonly kind: 'MAINTAINER';
  readonly line: number;
  readonly value: string;
}
/** EXPOSE/VOLUME words after expansion; undefined when their expansion failed. */
export interface ExpandedList {
  readonly kind: 'EXPOSE' | 'VOLUME';
  readonly line: number;
  readonly words: readonly string[] | undefined;
}

/** A typed instruction with its variables substituted; RUN, SHELL, CMD, ENTRYPOINT and HEALTHCHECK are never expanded. */
export type ExpandedInstruction =
  | ExpandedFrom
  | ExpandedArg
  | ExpandedCopy
  | ExpandedPairs
  | ExpandedValue
  | ExpandedMaintainer
  | ExpandedList
  | Extract<TypedInstruction, { kind: 'RUN' | 'SHELL' | 'CMD' | 'ENTRYPOINT' | 'HEALTHCHECK' }>;

/** Word processing bound to the variables and escape character in force, reporting failures. */
interface Words {
  /** One word; undefined when its expansion failed. */
  word(s: string, keepUnknown?: boolean): string | undefined;
  /** Whitespace-separated words; undefined when their expansion failed. */
  words(s: string): string[] | undefined;
  /** Exec-form elements one by one (a failed one becomes ''), or the shell form split into words. */
  form(f: Form): string[] | undefined;
}

/** The member of union `U` whose `kind` includes `K` (unlike `Extract`, matches `kind: 'COPY' | 'ADD'` for `'COPY'`). */
export type OfKind<U extends { kind: string }, K extends string> = U extends { kind: infer X } ? (K extends X ? U : never) : never;

type Expanders = { readonly [K in TypedInstruction['kind']]: (inst: OfKind<TypedInstruction, K>, w: Words) => ExpandedInstruction };

/** Kept as written: RUN, SHELL, CMD, ENTRYPOINT and HEALTHCHECK (the shell or the runtime expands them). */
const asWritten = <T extends ExpandedInstruction>(inst: T): T => inst;

const EXPANDERS: Expanders = {
  FROM: (inst, w) => ({ kind: 'FROM', line: inst.line, words: (w.words(inst.args) ?? []).filter((x) => x !== '') }),
  ARG: (inst, w) => ({ kind: 'ARG', line: inst.line, decls: inst.decls.map((d) => [d.name, d.value === undefined ? undefined : w.word(d.value)] as const) }),
  COPY: expandCopy,
  ADD: expandCopy,
  ENV: expandPairs,
  LABEL: expandPairs,
  WORKDIR: expandValue,
  USER: expandValue,
  STOPSIGNAL: expandValue,
  MAINTAINER: (inst, w) => ({ kind: 'MAINTAINER', line: inst.line, value: w.word(inst.value) ?? inst.value }),
  EXPOSE: (inst, w) => ({ kind: 'EXPOSE', line: inst.line, words: w.words(inst.ports) }),
  VOLUME: (inst, w) => ({ kind: 'VOLUME', line: inst.line, words: w.form(inst.paths) }),
  RUN: asWritten,
  SHELL: asWritten,
  CMD: asWritten,
  ENTRYPOINT: asWritten,
  HEALTHCHECK: asWritten,
};

/**
 * Substitutes the variables of `vars` into an instruction's arguments, with `escape` the file's
 * escape character. A malformed `${…}` or a failed `${X:?msg}` is passed to `fail` and the affected
 * value falls back as Docker's frontend did before (see each case); never throws for user errors.
 */
export function expandInstruction(inst: TypedInstruction, vars: ReadonlyMap<string, string>, escape: string, fail: (message: string) => void): ExpandedInstruction {
  const word = (s: string, keepUnknown = false) => guard(fail, () => processWord(s, vars, escape, keepUnknown));
  const words = (s: string) => guard(fail, () => processWords(s, vars, escape));
  const form = (f: Form) => ('json' in f ? f.json.map((x) => word(x) ?? '') : words(f.shell));
  // One table entry per kind; TypeScript cannot correlate `inst.kind` with the entry's parameter type.
  const expand = EXPANDERS[inst.kind] as (inst: TypedInstruction, w: Words) => ExpandedInstruction;
  return expand(inst, { word, words, form });
}

/** WORKDIR, USER, STOPSIGNAL: the value, undefined when it fails. */
function expandValue(inst: ValueInstruction, w: Words): ExpandedValue {
  return { kind: inst.kind, line: inst.line, value: w.word(inst.value) };
}

/** COPY/ADD: the paths (undefined when they fail), `--from` (as written when it fails) and `--chown`. */
function expandCopy(inst: CopyInstruction, w: Words): ExpandedCopy {
  const paths = w.form(inst.paths);
  return { ...inst, paths, from: inst.from === undefined ? undefined : (w.word(inst.from) ?? inst.from), chown: inst.chown === undefined ? undefined : w.word(inst.chown) };
}

/** ENV/LABEL: names (literal in the legacy form, else as written when they fail) and values (empty when they fail). */
function expandPairs(inst: PairsInstruction, w: Words): ExpandedPairs {
  const keep = keepsUnknown(inst.kind);
  const pairs = inst.pairs.map(([k, v]) => [inst.legacy ? k : (w.word(k, keep) ?? k), w.word(v, keep) ?? (inst.legacy ? v : '')] as const);
  return { kind: inst.kind, line: inst.line, pairs };
}

/**
 * Whether a variable the Dockerfile does not define is kept as `${NAME}` rather than emptied: for
 * ENV values only, so the builder can resolve it against the base image's environment (`$PATH`).
 * The one place that decides how ENV expansion treats unknown variables (issue #16 changes it).
 */
function keepsUnknown(kind: 'ENV' | 'LABEL'): boolean {
  return kind === 'ENV';
}

/** Runs a word-processing call, reporting a WordError to `fail` and yielding undefined instead. */
function guard<T>(fail: (message: string) => void, f: () => T): T | undefined {
  try {
    return f();
  } catch (e) {
    if (!(e instanceof WordError)) throw e;
    fail(e.message);
    return undefined;
  }
}
