/**
 * Schema validation with readable, located messages. ajv (allErrors) checks the parsed YAML against
 * `schemas/images.schema.json`; its errors are mapped back to YAML node ranges and rewritten for
 * people: unknown keys get "did you mean …?", failed `anyOf`s are re-checked branch by branch so the
 * user sees the errors of the alternative they evidently meant instead of every branch's complaints.
 */
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import type { Document } from 'yaml';
import { precompiledRootValidator } from './precompiled-validator.js';
import { createSpecAjv, specSchemaId } from './schema-compiler.js';
import { STEP_KINDS } from './model.js';
import { closest, didYouMean, type Problem } from './problems.js';
import { keyRange, pathString, rangeForPath, type JsonPath, type SourceText } from './yaml-source.js';

/** A schema error in path terms, before it is given a position. */
export interface SchemaIssue {
  readonly path: JsonPath;
  /** Point at this member's key (unknown keys) rather than at the value. */
  readonly key?: string;
  readonly message: string;
}

let ajv: Ajv | undefined;
const branchValidators = new Map<unknown, ValidateFunction>();
let rootValidator: ValidateFunction | undefined;

function compiler(): Ajv {
  ajv ??= createSpecAjv();
  return ajv;
}

function validateRoot(): ValidateFunction {
  rootValidator ??= precompiledRootValidator ?? compiler().getSchema(specSchemaId())!;
  return rootValidator;
}

/** A validator for one anyOf branch (only needed to explain errors); `$ref`s resolve against the spec schema. */
function branchValidator(branch: Record<string, unknown>): ValidateFunction {
  let v = branchValidators.get(branch);
  if (!v) {
    v = compiler().compile(rebaseRefs(branch) as object);
    branchValidators.set(branch, v);
  }
  return v;
}

function rebaseRefs(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(rebaseRefs);
  if (schema && typeof schema === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(schema)) out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#') ? `${specSchemaId()}${v}` : rebaseRefs(v);
    return out;
  }
  return schema;
}

/** Validates `value` against the spec schema and returns issues as paths and messages. */
export function schemaIssues(value: unknown): SchemaIssue[] {
  const v = validateRoot();
  if (v(value)) return [];
  return mapErrors(v.errors ?? [], value, []);
}

/** Validates and locates every issue in the YAML document. */
export function checkSchema(value: unknown, doc: Document.Parsed, source: SourceText): Problem[] {
  return schemaIssues(value).map((i) => source.problem(i.key === undefined ? rangeForPath(doc, i.path) : keyRange(doc, i.path, i.key), i.message));
}

function pointerToPath(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s));
}

function valueAt(root: unknown, path: JsonPath): unknown {
  let v = root;
  for (const seg of path) v = v && typeof v === 'object' ? (v as Record<string | number, unknown>)[seg] : undefined;
  return v;
}

function isUnder(pointer: string, base: string): boolean {
  return pointer === base || pointer.startsWith(`${base}/`);
}

function mapErrors(errors: readonly ErrorObject[], root: unknown, prefix: JsonPath): SchemaIssue[] {
  // anyOf failures are re-derived branch by branch; drop everything under the outermost ones.
  const anyOfs = errors.filter((e) => e.keyword === 'anyOf');
  const outer = anyOfs.filter((a) => !anyOfs.some((b) => b !== a && isUnder(a.instancePath, b.instancePath) && a.instancePath !== b.instancePath));
  const outerPaths = [...new Set(outer.map((a) => a.instancePath))];
  const issues: SchemaIssue[] = [];
  for (const p of outerPaths) {
    // Several anyOfs can fail at one path (an alternative that is itself an anyOf); ajv reports the
    // enclosing one last.
    const err = outer.filter((a) => a.instancePath === p).at(-1)!;
    issues.push(...explainAnyOf(err, root, [...prefix, ...pointerToPath(p)], valueAt(root, pointerToPath(p))));
  }
  const rest = errors.filter((e) => !outerPaths.some((p) => isUnder(e.instancePath, p)));
  const stepKindErrors = new Set(rest.filter((e) => e.schemaPath.includes('/stepKind/')).map((e) => e.instancePath));
  for (const e of rest) {
    if (e.keyword === 'if') continue;
    const path = [...prefix, ...pointerToPath(e.instancePath)];
    const data = valueAt(root, pointerToPath(e.instancePath));
    if (e.schemaPath.includes('/stepKind/')) {
      if (e.keyword === 'oneOf') issues.push(stepKindIssue(path, data));
      continue;
    }
    if (e.keyword === 'additionalProperties') {
      const name = (e.params as { additionalProperty: string }).additionalProperty;
      // A step with several kinds is reported once, by the stepKind check.
      if (stepKindErrors.has(e.instancePath)) continue;
      const props = Object.keys(((e.parentSchema as { properties?: object } | undefined)?.properties ?? {}) as object);
      issues.push({ path, key: name, message: `${pathString(path)}: unknown key "${name}"${didYouMean(name, props)}` });
      continue;
    }
    if (e.keyword === 'required') {
      if (stepKindErrors.has(e.instancePath)) continue;
      const missing = (e.params as { missingProperty: string }).missingProperty;
      const present = data && typeof data === 'object' ? Object.keys(data) : [];
      // "unknown key chwon; did you mean chown" already says it; do not also say chown is missing.
      if (present.some((k) => closest(k, [missing]) === missing)) continue;
      issues.push({ path, message: `${pathString(path)}: missing required key "${missing}"` });
      continue;
    }
    if (e.keyword === 'propertyNames') continue;
    if (e.propertyName !== undefined) {
      const hint = (e.parentSchema as { patternHint?: string } | undefined)?.patternHint;
      issues.push({ path, key: e.propertyName, message: `${pathString(path)}: "${e.propertyName}" is not a valid key${hint ? `: use ${hint}` : ''}` });
      continue;
    }
    issues.push({ path, message: `${pathString(path)}: ${describe(e, data)}` });
  }
  return issues;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  array: 'a list',
  object: 'a mapping',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  null: 'null',
};

function typeWords(t: unknown): string {
  const list = Array.isArray(t) ? t : [t];
  return list.map((x) => TYPE_WORDS[String(x)] ?? String(x)).join(' or ');
}

function shown(data: unknown): string {
  const s = JSON.stringify(data);
  return s === undefined ? String(data) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function describe(e: ErrorObject, data: unknown): string {
  const parent = e.parentSchema as { patternHint?: string } | undefined;
  switch (e.keyword) {
    case 'type': {
      const want = (e.params as { type: string | string[] }).type;
      const wantsString = (Array.isArray(want) ? want : [want]).includes('string');
      const quote = wantsString && (typeof data === 'number' || typeof data === 'boolean') ? ` (quote it: "${String(data)}")` : '';
      return `must be ${typeWords(want)}, not ${jsonType(data)}${quote}`;
    }
    case 'const':
      return `must be ${shown((e.params as { allowedValue: unknown }).allowedValue)}, not ${shown(data)}`;
    case 'enum': {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map(String);
      return `must be one of ${allowed.join(', ')}, not ${shown(data)}${typeof data === 'string' ? didYouMean(data, allowed) : ''}`;
    }
    case 'pattern':
      return `${shown(data)} is not valid: use ${parent?.patternHint ?? `a value matching ${(e.params as { pattern: string }).pattern}`}`;
    case 'minItems':
    case 'minLength':
    case 'minProperties':
      return 'must not be empty';
    case 'minimum':
    case 'maximum':
      return `${shown(data)} is out of range (${e.message ?? ''})`;
    case 'oneOf':
      return 'matches more than one form';
    default:
      return e.message ?? `fails ${e.keyword}`;
  }
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'boolean') return `${v}`;
  return `the ${typeof v} ${shown(v)}`;
}

function stepKindIssue(path: JsonPath, data: unknown): SchemaIssue {
  const keys = data && typeof data === 'object' ? Object.keys(data) : [];
  // `env` beside `run` is the run step's option, not a second kind.
  const kinds = keys.filter((k) => (STEP_KINDS as readonly string[]).includes(k) && !(k === 'env' && keys.includes('run')));
  if (kinds.length > 1) {
    return { path, key: kinds[1], message: `${pathString(path)}: one step has several kinds (${kinds.map((k) => `"${k}"`).join(' and ')}); make them separate steps` };
  }
  const guess = keys.map((k) => [k, closest(k, STEP_KINDS)] as const).find(([, c]) => c !== undefined);
  if (guess) return { path, key: guess[0], message: `${pathString(path)}: unknown step "${guess[0]}"; did you mean "${guess[1]}"?` };
  return { path, message: `${pathString(path)}: a step needs one of ${STEP_KINDS.join(', ')}` };
}

/**
 * Explains a failed anyOf: re-checks the value against each alternative and reports the errors of
 * the one that fits best (right JSON type, fewest errors); when no alternative has the right type,
 * says which types are accepted.
 */
function explainAnyOf(err: ErrorObject, root: unknown, path: JsonPath, data: unknown): SchemaIssue[] {
  const branches = (err.schema as Record<string, unknown>[]) ?? [];
  const scored: { errors: ErrorObject[]; score: number }[] = [];
  const expected: string[] = [];
  for (const branch of branches) {
    const v = branchValidator(branch);
    if (v(data)) return [];
    const errors = v.errors ?? [];
    const mismatch = errors.find((e) => e.instancePath === '' && (e.keyword === 'type' || e.keyword === 'const'));
    if (mismatch) {
      expected.push(mismatch.keyword === 'type' ? typeWords((mismatch.params as { type: unknown }).type) : shown((mismatch.params as { allowedValue: unknown }).allowedValue));
      continue;
    }
    // A typo that suggests a required key of this branch means the user meant this branch.
    const relevant = errors.filter((e) => e.keyword !== 'if');
    const bonus = relevant.some((e) => e.keyword === 'additionalProperties' && relevant.some((r) => r.keyword === 'required' && closest((e.params as { additionalProperty: string }).additionalProperty, [(r.params as { missingProperty: string }).missingProperty]) !== undefined)) ? 0.5 : 0;
    scored.push({ errors, score: relevant.length - bonus });
  }
  if (scored.length === 0) {
    return [{ path, message: `${pathString(path)}: must be ${[...new Set(expected)].join(', or ')}, not ${jsonType(data)}` }];
  }
  scored.sort((a, b) => a.score - b.score);
  return mapErrors(scored[0]!.errors, data, path);
}
