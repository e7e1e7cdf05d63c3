/**
 * Dockerfile frontend, stage 1 of 4 (parse → typed instructions → expansion → compile): parser
 * directives (`# escape=`), comments, line continuations, and each instruction's keyword, flags and
 * JSON (exec) or shell form, with its source line. Pure text in, raw instructions out; the
 * instructions get their meaning in `dockerfile-instructions.ts`.
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
  return { keyword, flags, args: rest, json: jsonStrings(rest), line, text };
}

/** The text as a JSON array of strings (exec form), or undefined: Docker then reads it as shell form. */
export function jsonStrings(text: string): string[] | undefined {
  if (!text.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
  } catch {
    return undefined;
  }
}

function unquote(v: string): string {
  if (v.length >= 2 && ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))) return v.slice(1, -1);
  return v;
}
