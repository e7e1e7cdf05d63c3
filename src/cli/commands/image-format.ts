/**
 * A small subset of Go's text/template, enough for the `--format` strings people use with the docker
 * CLI: `{{.Field}}`, `{{.A.B}}`, `{{json .X}}`, `{{index .Map "key"}}`, `{{.}}`, and `\t` / `\n`
 * escapes in the literal text. Values print the way Go prints them (`[a b]`, `map[k:v]`, `<nil>`).
 */
import { DimgError } from '../../errors.js';

const ACTION = /\{\{-?\s*(.*?)\s*-?\}\}/g;

/** Renders `template` against `data`. Throws TEMPLATE_INVALID naming the action it cannot parse. */
export function renderTemplate(template: string, data: unknown): string {
  const text = template.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  return text.replace(ACTION, (_m, action: string) => evaluate(action, data, template));
}

function evaluate(action: string, data: unknown, template: string): string {
  const words = action.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? [];
  const bad = () =>
    new DimgError('TEMPLATE_INVALID', `cannot evaluate "{{${action}}}" in format "${template}"`, 'supported: {{.Field}}, {{.A.B}}, {{json .Field}}, {{index .Map "key"}}');
  if (words.length === 1) return goString(lookup(words[0]!, data, bad));
  if (words[0] === 'json' && words.length === 2) return JSON.stringify(lookup(words[1]!, data, bad) ?? null);
  if (words[0] === 'index' && words.length === 3) {
    const obj = lookup(words[1]!, data, bad);
    const key = words[2]!.startsWith('"') ? (JSON.parse(words[2]!) as string) : Number(words[2]);
    const v = obj && typeof obj === 'object' ? (obj as Record<string | number, unknown>)[key] : undefined;
    return goString(v);
  }
  throw bad();
}

function lookup(path: string, data: unknown, bad: () => Error): unknown {
  if (path === '.') return data;
  if (!path.startsWith('.')) throw bad();
  let v: unknown = data;
  for (const part of path.slice(1).split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    if (!(part in (v as object))) throw bad();
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** Go's default formatting of a value (fmt %v). */
export function goString(v: unknown): string {
  if (v === null || v === undefined) return '<nil>';
  if (Array.isArray(v)) return `[${v.map(goString).join(' ')}]`;
  if (typeof v === 'object') {
    const keys = Object.keys(v).sort();
    return `map[${keys.map((k) => `${k}:${goString((v as Record<string, unknown>)[k])}`).join(' ')}]`;
  }
  return String(v);
}
