/**
 * The word processing Docker applies to instruction arguments, as a shell would: quotes, escapes,
 * `$VAR`, `${VAR}`, `${VAR:-x}`, `${VAR:+x}`, `${VAR:?msg}`. Used by the expansion stage of the
 * Dockerfile frontend (`dockerfile-expand.ts`), which decides which variables are visible where.
 */

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
