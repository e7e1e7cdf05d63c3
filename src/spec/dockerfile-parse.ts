/**
 * Dockerfile syntax: parser directives (`# escape=`), comments, line continuations, instructions
 * with their flags and JSON (exec) or shell forms, and the word processing Docker applies to
 * instruction arguments (quotes, escapes, `$VAR`, `${VAR}`, `${VAR:-x}`, `${VAR:+x}`). Pure text in,
 * data out; the compiler (`dockerfile.ts`) gives the instructions their meaning.
 */

/** One instruction, continuation lines joined. */
export interface Instruction {
  /** Upper-case keyword, e.g. `RUN`. */
  readonly keyword: string;
  /** `--name=value` flags in order (values unprocessed). */
  readonly flags: readonly { readonly name: string; readonly value: string | undefined }[];
  /** The arguments after the flags, continuation lines joined. */
  readonly args: string;
  /** The arguments as a JSON string array when written in exec form, else undefined. */
  readonly json?: readonly string[];
  /** 1-based line where the instruction starts. */
  readonly line: number;
  /** The instruction as written (joined), for history and messages. */
  readonly text: string;
}

/** A syntax problem at a 1-based line and column. */
export interface LineProblem {
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

/** The parsed file. */
export interface ParsedDockerfile {
  readonly instructions: readonly Instruction[];
  /** The escape character (`\` or a backtick). */
  readonly escape: string;
  readonly problems: readonly LineProblem[];
}

const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
const HEREDOC = /<<-?\s*["']?[A-Za-z_][A-Za-z0-9_]*["']?/;
const HEREDOC_NAME = /<<(-?)\s*["']?([A-Za-z_][A-Za-z0-9_]*)["']?/;

/** Splits Dockerfile text into instructions. Never throws; problems carry their line. */
export function parseDockerfile(text: string): ParsedDockerfile {
  const lines = text.split(/\r?\n/);
  const problems: LineProblem[] = [];
  let escape = '\\';
  let i = 0;
  // Parser directives: only at the very top, before any blank line, comment or instruction.
  for (; i < lines.length; i++) {
    const m = DIRECTIVE.exec(lines[i]!);
    if (!m) break;
    const name = m[1]!.toLowerCase();
    if (name === 'escape') {
      if (m[2] !== '\\' && m[2] !== '`') problems.push({ line: i + 1, col: 1, message: `invalid escape directive "${m[2]}": use \\ or \`` });
      else escape = m[2];
    }
    // `syntax` and `check` select BuildKit frontends and linters; dimg is its own frontend.
  }
  const instructions: Instruction[] = [];
  while (i < lines.length) {
    const raw = lines[i]!;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) {
      i++;
      continue;
    }
    const start = i;
    let joined = '';
    let line = raw.replace(/^\s+/, '');
    for (;;) {
      const t = line.replace(/\s+$/, '');
      if (t.endsWith(escape)) {
        joined += t.slice(0, -1);
        i++;
        // Inside a continuation, comment lines and empty lines are dropped, as Docker does.
        while (i < lines.length && (lines[i]!.trim() === '' || lines[i]!.trim().startsWith('#'))) i++;
        if (i >= lines.length) break;
        line = lines[i]!;
        continue;
      }
      joined += line;
      i++;
      break;
    }
    const inst = splitInstruction(joined.trim(), start + 1, problems);
    if (inst) instructions.push(inst);
    else {
      // A rejected heredoc: skip its body so its lines are not read as instructions.
      const h = HEREDOC_NAME.exec(joined);
      if (h) {
        while (i < lines.length && lines[i]!.replace(h[1] === '-' ? /^\t+/ : /^$/, '') !== h[2]) i++;
        i++;
      }
    }
  }
  return { instructions, escape, problems };
}

function splitInstruction(text: string, line: number, problems: LineProblem[]): Instruction | undefined {
  const m = /^(\S+)\s*([\s\S]*)$/.exec(text);
  if (!m) return undefined;
  const keyword = m[1]!.toUpperCase();
  let rest = m[2]!;
  const flags: { name: string; value: string | undefined }[] = [];
  while (rest.startsWith('--')) {
    const f = /^--([A-Za-z][A-Za-z0-9-]*)(?:=((?:"[^"]*"|'[^']*'|\S)*))?\s*/.exec(rest);
    if (!f) break;
    flags.push({ name: f[1]!.toLowerCase(), value: f[2] === undefined ? undefined : unquote(f[2]) });
    rest = rest.slice(f[0].length);
  }
  if ((keyword === 'RUN' || keyword === 'COPY' || keyword === 'ADD') && HEREDOC.test(rest) && !rest.trimStart().startsWith('[')) {
    problems.push({ line, col: 1, message: `${keyword} with a heredoc (<<EOF) is not supported; put the content in a file of the context and COPY it` });
    return undefined;
  }
  let json: string[] | undefined;
  if (rest.startsWith('[')) {
    try {
      const v = JSON.parse(rest) as unknown;
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) json = v as string[];
    } catch {
      // Not JSON: Docker then treats the arguments as shell form.
    }
  }
  return { keyword, flags, args: rest, json, line, text };
}

function unquote(v: string): string {
  if (v.length >= 2 && ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))) return v.slice(1, -1);
  return v;
}

/** Variables visible to word processing; undefined members are unset. */
export type Vars = ReadonlyMap<string, string>;

/** Thrown by word processing on malformed `${…}` or `${VAR:?message}` failures. */
export class WordError extends Error {}

/**
 * Processes one word: quotes removed, escapes applied, variables expanded (no splitting). With
 * `keepUnknown`, a plain `$NAME`/`${NAME}` the Dockerfile does not define is kept as `${NAME}`
 * (ENV values: the builder resolves it against the base image's environment, e.g. `$PATH`).
 */
export function processWord(s: string, vars: Vars, escape = '\\', keepUnknown = false): string {
  return lex(s, vars, escape, false, keepUnknown).join('');
}

/** Processes and splits on unquoted whitespace: `EXPOSE`, `VOLUME`, `COPY` arguments. */
export function processWords(s: string, vars: Vars, escape = '\\'): string[] {
  return lex(s, vars, escape, true);
}

/**
 * Splits `ENV`/`LABEL` arguments into words respecting quotes and escapes but keeping them, so
 * `KEY="a b"` stays one word; each word is then processed on its own.
 */
export function splitRawWords(s: string, escape = '\\'): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: string | undefined;
  let any = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      cur += c;
      if (c === escape && quote === '"' && i + 1 < s.length) cur += s[++i];
      else if (c === quote) quote = undefined;
    } else if (/\s/.test(c)) {
      if (any) words.push(cur);
      cur = '';
      any = false;
    } else {
      any = true;
      cur += c;
      if (c === escape && i + 1 < s.length) cur += s[++i];
      else if (c === '"' || c === "'") quote = c;
    }
  }
  if (any) words.push(cur);
  return words;
}

function lex(s: string, vars: Vars, escape: string, split: boolean, keepUnknown = false): string[] {
  const words: string[] = [];
  let cur = '';
  let started = false;
  let i = 0;
  const flush = () => {
    if (started) words.push(cur);
    cur = '';
    started = false;
  };
  while (i < s.length) {
    const c = s[i]!;
    if (c === escape) {
      started = true;
      if (i + 1 < s.length) cur += s[i + 1];
      else cur += c;
      i += 2;
    } else if (c === "'") {
      started = true;
      const end = s.indexOf("'", i + 1);
      if (end < 0) throw new WordError('unterminated single quote');
      cur += s.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      started = true;
      i++;
      for (;;) {
        if (i >= s.length) throw new WordError('unterminated double quote');
        const d = s[i]!;
        if (d === '"') {
          i++;
          break;
        }
        if (d === escape && i + 1 < s.length && ['"', '$', escape].includes(s[i + 1]!)) {
          cur += s[i + 1];
          i += 2;
        } else if (d === '$') {
          const r = expand(s, i, vars, escape, keepUnknown);
          cur += r.value;
          i = r.next;
        } else {
          cur += d;
          i++;
        }
      }
    } else if (c === '$') {
      const r = expand(s, i, vars, escape, keepUnknown);
      // An expansion that yields nothing still starts a word only when it is quoted; unquoted
      // empty values vanish, as in a shell.
      if (r.value !== '') started = true;
      cur += r.value;
      i = r.next;
    } else if (split && /\s/.test(c)) {
      flush();
      i++;
    } else {
      started = true;
      cur += c;
      i++;
    }
  }
  flush();
  if (!split && words.length === 0) return [''];
  return words;
}

function expand(s: string, at: number, vars: Vars, escape: string, keepUnknown: boolean): { value: string; next: number } {
  const next = s[at + 1];
  if (next === '{') {
    let depth = 1;
    let j = at + 2;
    for (; j < s.length && depth > 0; j++) {
      if (s[j] === '{') depth++;
      else if (s[j] === '}') depth--;
    }
    if (depth > 0) throw new WordError(`unterminated "\${" in "${s}"`);
    const body = s.slice(at + 2, j - 1);
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+?])([\s\S]*))?$/.exec(body);
    if (!m) throw new WordError(`bad substitution "\${${body}}"`);
    const [, name, op, word] = m;
    const value = vars.get(name!);
    const isSet = value !== undefined;
    const isNonEmpty = isSet && value !== '';
    const w = () => processWord(word ?? '', vars, escape);
    switch (op) {
      case undefined:
        return { value: value ?? (keepUnknown ? `\${${name}}` : ''), next: j };
      case ':-':
        return { value: isNonEmpty ? value! : w(), next: j };
      case '-':
        return { value: isSet ? value! : w(), next: j };
      case ':+':
        return { value: isNonEmpty ? w() : '', next: j };
      case '+':
        return { value: isSet ? w() : '', next: j };
      default:
        if ((op === ':?' && !isNonEmpty) || (op === '?' && !isSet)) throw new WordError(`${name}: ${w() || 'is not set'}`);
        return { value: value!, next: j };
    }
  }
  const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s.slice(at + 1));
  if (!m) return { value: '$', next: at + 1 };
  return { value: vars.get(m[0]) ?? (keepUnknown ? `\${${m[0]}}` : ''), next: at + 1 + m[0].length };
}
