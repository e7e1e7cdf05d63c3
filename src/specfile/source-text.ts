/**
 * A source text (a spec or a Dockerfile) that turns offsets into problems with line, column and the
 * line's text. Kept apart from yaml-source.ts so the Dockerfile frontend does not load the YAML parser.
 */
import type { Problem } from './problems.js';
import type { SourceLocation } from './model.js';

/** A source text that can turn offsets into problems with line, column and the line's text. */
export class SourceText {
  private readonly lines: string[];
  private readonly starts: number[] = [0];

  constructor(
    /** The file as shown to the user. */
    readonly display: string,
    readonly text: string,
  ) {
    this.lines = text.split(/\r?\n/);
    for (let i = 0; i < text.length; i++) if (text[i] === '\n') this.starts.push(i + 1);
  }

  /** 1-based line and column of a character offset. */
  position(offset: number): { line: number; col: number } {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - this.starts[lo]! + 1 };
  }

  /** The text of a 1-based line, or undefined past the end. */
  lineText(line: number): string | undefined {
    return this.lines[line - 1];
  }

  /** A problem at an offset range. */
  problem(range: readonly [number, number] | undefined, message: string): Problem {
    const [start, end] = range ?? [0, 1];
    const { line, col } = this.position(start);
    const source = this.lineText(line);
    const lineRest = source === undefined ? 1 : Math.max(1, source.length - (col - 1));
    return { file: this.display, line, col, message, source, length: Math.max(1, Math.min(end - start, lineRest)) };
  }

  /** A problem at a 1-based line and column. */
  problemAtLine(line: number, col: number, message: string, length = 1): Problem {
    return { file: this.display, line, col, message, source: this.lineText(line), length };
  }

  /** A location for the model. */
  location(range: readonly [number, number] | undefined): SourceLocation {
    const { line, col } = this.position(range?.[0] ?? 0);
    return { file: this.display, line, col };
  }
}
