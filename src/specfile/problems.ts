/**
 * Spec problems: every fault found in a spec, each with its place, collected rather than thrown one
 * by one, and rendered as `FILE:LINE:COL: message` with the source line and a caret under it.
 */
import { DimgError } from '../errors.js';

/** One problem with its location (1-based line and column). */
export interface Problem {
  /** File as shown to the user. */
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
  /** The text of the offending line, when known. */
  readonly source?: string;
  /** Width of the caret underline (at least 1). */
  readonly length?: number;
}

/** Renders problems as the CLI prints them: location, message, then the source line and a caret. */
export function formatProblems(problems: readonly Problem[]): string {
  return problems.map(formatProblem).join('\n');
}

/** One problem, possibly spanning three lines. */
export function formatProblem(p: Problem): string {
  let out = `${p.file}:${p.line}:${p.col}: ${p.message}\n`;
  if (p.source !== undefined) {
    const gutter = String(p.line).padStart(5);
    const src = p.source.replace(/\t/g, ' ');
    const visible = Math.max(1, Math.min(p.length ?? 1, Math.max(1, src.length - (p.col - 1))));
    out += `${gutter} | ${src}\n`;
    out += `${' '.repeat(gutter.length)} | ${' '.repeat(Math.max(0, p.col - 1))}${'^'.repeat(visible)}\n`;
  }
  return out;
}

/** Orders problems by file, then position, so output is stable. */
export function sortProblems(problems: readonly Problem[]): Problem[] {
  return [...problems].sort((a, b) => (a.file === b.file ? a.line - b.line || a.col - b.col : a.file < b.file ? -1 : 1));
}

/** Thrown by `loadSpec` when a spec has problems; carries all of them. Code `SPEC_INVALID`. */
export class SpecError extends DimgError {
  readonly problems: readonly Problem[];

  constructor(file: string, problems: readonly Problem[]) {
    const n = problems.length;
    super(
      'SPEC_INVALID',
      `${file} has ${n} problem${n === 1 ? '' : 's'}:\n${formatProblems(problems).trimEnd()}`,
      'fix the problems above; `dimg schema` prints the JSON Schema of the file',
    );
    this.name = 'SpecError';
    this.problems = problems;
  }
}

/** Levenshtein distance, for "did you mean …?". */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The closest candidate within a distance that scales with length, or undefined. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  const limit = Math.max(1, Math.min(3, Math.floor(word.length / 3) + 1));
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return bestD <= limit ? best : undefined;
}

/** `; did you mean "x"?` or the empty string. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const c = closest(word, candidates);
  return c === undefined ? '' : `; did you mean "${c}"?`;
}
