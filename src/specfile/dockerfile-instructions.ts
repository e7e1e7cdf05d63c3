/**
 * Dockerfile frontend, stage 2 of 4 (parse → typed instructions → expansion → compile): gives each
 * raw instruction its type, one member of a discriminated union per keyword, with its flags parsed
 * and checked. Only what does not depend on variables is decided here; arguments that ARG/ENV values
 * can change stay unexpanded strings for `dockerfile-expand.ts`.
 */
import type { SecretMount } from './model.js';
import { jsonStrings, type Instruction } from './dockerfile-parse.js';
import { splitRawWords } from './dockerfile-words.js';
import { defaultSecretTarget, parseDuration } from './steps.js';
import { didYouMean } from './problems.js';

/** Arguments written either in exec (JSON array) form or in shell form (the raw text). */
export type Form = { readonly json: readonly string[] } | { readonly shell: string };

/** What every typed instruction carries: where it is, for messages. */
interface At {
  /** 1-based line of the instruction. */
  readonly line: number;
}

/** `FROM [--platform=P] IMAGE [AS NAME]`, its arguments unexpanded. */
export interface FromInstruction extends At {
  readonly kind: 'FROM';
  readonly args: string;
}
/** `ARG NAME[=default] ...`; `value` is the unexpanded default, undefined when none is given. */
export interface ArgInstruction extends At {
  readonly kind: 'ARG';
  readonly decls: readonly { readonly name: string; readonly value?: string }[];
}
/** `RUN`: never expanded by dimg (the shell does it, with the build args in the environment). */
export interface RunInstruction extends At {
  readonly kind: 'RUN';
  readonly form: Form;
  readonly network: 'none' | 'host';
  readonly secrets: readonly SecretMount[];
}
/** `COPY`/`ADD`: sources and destination, `--from` and `--chown` unexpanded, `--chmod` as written. */
export interface CopyInstruction extends At {
  readonly kind: 'COPY' | 'ADD';
  readonly paths: Form;
  readonly from?: string;
  readonly chown?: string;
  readonly chmod?: string;
}
/** `ENV`/`LABEL` pairs, unexpanded; `legacy` for `ENV NAME value with spaces` (the name is literal). */
export interface PairsInstruction extends At {
  readonly kind: 'ENV' | 'LABEL';
  readonly pairs: readonly (readonly [string, string])[];
  readonly legacy: boolean;
}
/** Instructions with one unexpanded value: `WORKDIR`, `USER`, `STOPSIGNAL`. */
export interface ValueInstruction extends At {
  readonly kind: 'WORKDIR' | 'USER' | 'STOPSIGNAL';
  readonly value: string;
}
/** `MAINTAINER name` (deprecated by Docker), the name unexpanded and untrimmed. */
export interface MaintainerInstruction extends At {
  readonly kind: 'MAINTAINER';
  readonly value: string;
}
/** `EXPOSE PORT[/PROTO]...`, unexpanded. */
export interface ExposeInstruction extends At {
  readonly kind: 'EXPOSE';
  readonly ports: string;
}
/** `VOLUME PATH...` or `VOLUME ["PATH", ...]`, unexpanded. */
export interface VolumeInstruction extends At {
  readonly kind: 'VOLUME';
  readonly paths: Form;
}
/** `SHELL ["exe", "arg", ...]`: only the JSON form exists. */
export interface ShellInstruction extends At {
  readonly kind: 'SHELL';
  readonly argv: readonly string[];
}
/** `CMD`/`ENTRYPOINT`; the shell form is run through the stage's SHELL, never expanded. */
export interface CommandInstruction extends At {
  readonly kind: 'CMD' | 'ENTRYPOINT';
  readonly form: Form;
}
/** `HEALTHCHECK`: `test` as in the image config (`NONE`, `CMD …` or `CMD-SHELL …`), durations in ns. */
export interface HealthcheckInstruction extends At {
  readonly kind: 'HEALTHCHECK';
  readonly test: readonly string[];
  readonly options?: Readonly<Record<string, number>>;
}

/** A Dockerfile instruction with its meaning; `kind` is the upper-case keyword. */
export type TypedInstruction =
  | FromInstruction
  | ArgInstruction
  | RunInstruction
  | CopyInstruction
  | PairsInstruction
  | ValueInstruction
  | MaintainerInstruction
  | ExposeInstruction
  | VolumeInstruction
  | ShellInstruction
  | CommandInstruction
  | HealthcheckInstruction;

/** A message for an instruction that cannot be typed; the caller locates it at the instruction. */
export interface InstructionError {
  readonly error: string;
}

/** How each keyword is typed; the one place that lists the keywords dimg knows, in Docker's order. */
const TYPERS: Readonly<Record<string, (inst: Instruction, escape: string) => TypedInstruction | InstructionError>> = {
  FROM: (i) => ({ kind: 'FROM', line: i.line, args: i.args }),
  RUN: runInstruction,
  COPY: copyInstruction,
  ADD: copyInstruction,
  ENV: pairsInstruction,
  ARG: (i) => ({ kind: 'ARG', line: i.line, decls: argDecls(i.args) }),
  WORKDIR: valueInstruction,
  USER: valueInstruction,
  LABEL: pairsInstruction,
  EXPOSE: (i) => ({ kind: 'EXPOSE', line: i.line, ports: i.args }),
  VOLUME: (i) => ({ kind: 'VOLUME', line: i.line, paths: form(i) }),
  CMD: (i) => ({ kind: i.keyword as 'CMD', line: i.line, form: form(i) }),
  ENTRYPOINT: (i) => ({ kind: i.keyword as 'ENTRYPOINT', line: i.line, form: form(i) }),
  SHELL: (i) => (i.json && i.json.length > 0 ? { kind: 'SHELL', line: i.line, argv: [...i.json] } : { error: 'must be written in JSON form, e.g. SHELL ["/bin/sh", "-c"]' }),
  STOPSIGNAL: valueInstruction,
  HEALTHCHECK: healthcheckInstruction,
  MAINTAINER: (i) => ({ kind: 'MAINTAINER', line: i.line, value: i.args }),
  // Known, so not "unknown instruction", but refused.
  ONBUILD: () => ({ error: 'ONBUILD is not supported (it only affects images built later FROM this one)' }),
};

/** The keywords dimg knows, ONBUILD included (known, and refused). */
const KNOWN_KEYWORDS: readonly string[] = Object.keys(TYPERS);

const FLAGS: Readonly<Record<string, readonly string[]>> = {
  FROM: ['platform'],
  RUN: ['mount', 'network'],
  COPY: ['from', 'chown', 'chmod', 'link'],
  ADD: ['chown', 'chmod', 'link'],
  HEALTHCHECK: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
};

/**
 * Checks what every instruction must satisfy: a known keyword and only the flags it supports.
 * Returns the error message, or undefined. Kept apart from `typeInstruction` because an instruction
 * before the first FROM is reported between the two checks.
 */
export function checkKeywordAndFlags(inst: Instruction): string | undefined {
  if (!KNOWN_KEYWORDS.includes(inst.keyword)) return unknownKeyword(inst.keyword);
  const allowed = FLAGS[inst.keyword] ?? [];
  const bad = inst.flags.find((f) => !allowed.includes(f.name));
  if (!bad) return undefined;
  return `the flag --${bad.name} is not supported${allowed.length ? ` (supported: ${allowed.map((f) => `--${f}`).join(', ')})` : ''}`;
}

/**
 * Types a raw instruction that passed `checkKeywordAndFlags`, with `escape` the file's escape
 * character. Returns the typed instruction or the error message (ONBUILD, a bad RUN flag, a
 * malformed HEALTHCHECK, SHELL or ENV…). Pure; never throws for user errors.
 */
export function typeInstruction(inst: Instruction, escape: string): TypedInstruction | InstructionError {
  const typer = TYPERS[inst.keyword];
  return typer ? typer(inst, escape) : { error: unknownKeyword(inst.keyword) };
}

function unknownKeyword(keyword: string): string {
  return `unknown instruction${didYouMean(keyword, KNOWN_KEYWORDS)}`;
}

/** The arguments in exec form when written as a JSON array, else in shell form. */
function form(inst: Instruction): Form {
  return inst.json ? { json: inst.json } : { shell: inst.args };
}

/** COPY/ADD with its flags as written. */
function copyInstruction(inst: Instruction): CopyInstruction {
  const flag = (name: string) => inst.flags.find((f) => f.name === name)?.value;
  return { kind: inst.keyword as 'COPY' | 'ADD', line: inst.line, paths: form(inst), from: flag('from'), chown: flag('chown'), chmod: flag('chmod') };
}

/** WORKDIR, USER or STOPSIGNAL: the trimmed value. */
function valueInstruction(inst: Instruction): ValueInstruction {
  return { kind: inst.keyword as 'WORKDIR' | 'USER' | 'STOPSIGNAL', line: inst.line, value: inst.args.trim() };
}

/** `ARG A=1 B C="x y"` → A with `1`, B without a default, C with `"x y"` (still unexpanded). */
function argDecls(args: string): ArgInstruction['decls'] {
  return splitRawWords(args).map((w) => {
    const eq = w.indexOf('=');
    return eq < 0 ? { name: w } : { name: w.slice(0, eq), value: w.slice(eq + 1) };
  });
}

/** ENV/LABEL arguments: `K=V ...`, or the legacy `ENV K V with spaces`. */
function pairsInstruction(inst: Instruction, escape: string): PairsInstruction | InstructionError {
  const kind = inst.keyword as 'ENV' | 'LABEL';
  const error = { error: `expected ${kind} NAME=VALUE [NAME=VALUE...]` };
  const raw = splitRawWords(inst.args, escape);
  if (raw.length === 0) return error;
  if (!raw[0]!.includes('=')) {
    if (kind !== 'ENV' || raw.length < 2) return error;
    return { kind, line: inst.line, legacy: true, pairs: [[raw[0]!, inst.args.trim().slice(raw[0]!.length).trim()]] };
  }
  const pairs: [string, string][] = [];
  for (const w of raw) {
    const eq = w.indexOf('=');
    if (eq <= 0) return error;
    pairs.push([w.slice(0, eq), w.slice(eq + 1)]);
  }
  return { kind, line: inst.line, legacy: false, pairs };
}

/** RUN with its `--network` and `--mount=type=secret` flags checked. */
function runInstruction(inst: Instruction): RunInstruction | InstructionError {
  const secrets: SecretMount[] = [];
  let network: 'none' | 'host' = 'none';
  for (const f of inst.flags) {
    if (f.name === 'network') {
      if (f.value === 'host') network = 'host';
      else if (f.value === 'none' || f.value === 'default') network = 'none';
      else return { error: `--network=${f.value ?? ''} is not supported (none, host or default)` };
    } else if (f.name === 'mount') {
      const secret = secretMount(f.value ?? '');
      if (typeof secret === 'string') return { error: secret };
      secrets.push(secret);
    }
  }
  if (inst.json) return { kind: 'RUN', line: inst.line, form: { json: [...inst.json] }, network, secrets };
  if (inst.args.trim() === '') return { error: 'needs a command' };
  return { kind: 'RUN', line: inst.line, form: { shell: inst.args }, network, secrets };
}

const SECRET_OPTIONS = ['type', 'id', 'target', 'dst', 'destination', 'required', 'mode', 'uid', 'gid', 'env'];

/** A `--mount` value (`type=secret,id=x,…`) as a secret mount, or why it is not supported. */
function secretMount(value: string): SecretMount | string {
  const opts = new Map(
    value.split(',').map((kv) => {
      const eq = kv.indexOf('=');
      return (eq < 0 ? [kv, 'true'] : [kv.slice(0, eq), kv.slice(eq + 1)]) as [string, string];
    }),
  );
  const type = opts.get('type') ?? 'bind';
  if (type !== 'secret') return `--mount=type=${type} is not supported (only type=secret)`;
  const target = opts.get('target') ?? opts.get('dst') ?? opts.get('destination');
  const id = opts.get('id') ?? (target ? target.split('/').at(-1) : undefined);
  if (!id) return '--mount=type=secret needs id=ID';
  const unknown = [...opts.keys()].find((k) => !SECRET_OPTIONS.includes(k));
  if (unknown) return `--mount option "${unknown}" is not supported for secrets`;
  if (opts.has('env')) return '--mount=type=secret,env=… is not supported; mount the secret as a file';
  return { id, target: target ?? defaultSecretTarget(id), required: opts.get('required') === 'true' };
}

/** `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=… --retries=…] CMD command`. */
function healthcheckInstruction(inst: Instruction): HealthcheckInstruction | InstructionError {
  const args = inst.args.trim();
  if (/^NONE$/i.test(args)) return { kind: 'HEALTHCHECK', line: inst.line, test: ['NONE'] };
  const m = /^CMD\s+([\s\S]+)$/i.exec(args);
  if (!m) return { error: 'expected HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE' };
  const rest = m[1]!.trim();
  const options: Record<string, number> = {};
  for (const f of inst.flags) {
    if (f.name === 'retries') {
      if (!/^[0-9]+$/.test(f.value ?? '')) return { error: `--retries=${f.value ?? ''} is not a whole number` };
      options.retries = Number(f.value);
    } else {
      const ns = parseDuration(f.value ?? '');
      if (ns === undefined) return { error: `--${f.name}=${f.value ?? ''} is not a duration such as 30s` };
      options[f.name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = ns;
    }
  }
  const json = jsonStrings(rest);
  return { kind: 'HEALTHCHECK', line: inst.line, test: json ? ['CMD', ...json] : ['CMD-SHELL', rest], options };
}
