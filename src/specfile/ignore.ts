/**
 * `.dockerignore` / `.dimgignore` matching with Docker's semantics: one pattern a line, `#`
 * comments, `!` exceptions, the last matching pattern wins, patterns are cleaned and a leading `/`
 * is dropped (everything is relative to the context root), `*` and `?` stay within one path
 * segment, `**` spans any number of segments, and a pattern that matches a directory also matches
 * everything below it. Pure: the caller reads the file.
 */
import { posix } from 'node:path';
import { DimgError } from '../errors.js';
import { Glob, IGNORE_SYNTAX } from './glob.js';

/** Names of the ignore files, in order of preference (`.dimgignore` wins when both exist). */
export const IGNORE_FILES = ['.dimgignore', '.dockerignore'] as const;

interface Pattern {
  readonly text: string;
  readonly exclusion: boolean;
  readonly glob: Glob;
  /** Per path segment: its glob, or `undefined` where it holds `**` or cannot be read on its own. */
  readonly segments: readonly (Glob | undefined)[];
}

/** A compiled ignore file. */
export class IgnoreMatcher {
  private readonly patterns: readonly Pattern[];
  private readonly hasExceptions: boolean;

  /** Compiles patterns (lines of an ignore file). Throws IGNORE_PATTERN_INVALID on a bad one. */
  constructor(lines: readonly string[], source = '.dockerignore') {
    const patterns: Pattern[] = [];
    lines.forEach((raw, i) => {
      let text = raw.trim();
      if (text === '' || text.startsWith('#')) return;
      let exclusion = false;
      if (text.startsWith('!')) {
        exclusion = true;
        text = text.slice(1).trim();
        if (text === '') throw new DimgError('IGNORE_PATTERN_INVALID', `${source}:${i + 1}: "!" must be followed by a pattern`, 'write !PATTERN to re-include files');
      }
      text = posix.normalize(text);
      while (text.startsWith('/')) text = text.slice(1);
      if (text.endsWith('/') && text.length > 1) text = text.slice(0, -1);
      if (text === '' || text === '.') text = '.';
      patterns.push({ text, exclusion, glob: compile(text, source, i + 1), segments: text.split('/').map(segmentGlob) });
    });
    this.patterns = patterns;
    this.hasExceptions = patterns.some((p) => p.exclusion);
  }

  /** Parses the text of an ignore file. */
  static parse(text: string, source?: string): IgnoreMatcher {
    return new IgnoreMatcher(text.split(/\r?\n/), source);
  }

  /** True when there are no patterns at all (nothing is ever ignored). */
  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /**
   * True when `relPath` (slash-separated, relative to the context root, no leading `./`) is
   * ignored. `isDir` is accepted for symmetry with walkers; Docker's rules do not depend on it.
   */
  ignores(relPath: string, isDir = false): boolean {
    void isDir;
    const path = clean(relPath);
    if (path === '.') return false;
    let matched = false;
    for (const p of this.patterns) {
      // Only a pattern that could flip the current answer needs evaluating.
      if (p.exclusion !== matched) continue;
      if (p.glob.testPathOrParent(path)) matched = !p.exclusion;
    }
    return matched;
  }

  /**
   * True when the directory `relDir` and everything below it are ignored, so a walker may skip it
   * without listing it: it is ignored, and no `!` exception could re-include anything inside it.
   */
  canSkipDir(relDir: string): boolean {
    if (!this.ignores(relDir, true)) return false;
    if (!this.hasExceptions) return true;
    const dirSegs = clean(relDir).split('/');
    return !this.patterns.some((p) => p.exclusion && couldMatchBelow(p.segments, dirSegs));
  }
}

function clean(p: string): string {
  let s = posix.normalize(p.replace(/\\/g, '/'));
  while (s.startsWith('/')) s = s.slice(1);
  if (s.startsWith('./')) s = s.slice(2);
  if (s.endsWith('/') && s.length > 1) s = s.slice(0, -1);
  return s === '' ? '.' : s;
}

/** Could a pattern with these segments match a path strictly inside (or equal to) the directory? */
function couldMatchBelow(patSegs: readonly (Glob | undefined)[], dirSegs: readonly string[]): boolean {
  for (let i = 0; i < dirSegs.length; i++) {
    // The pattern ends above the directory: it names an ancestor, which re-includes everything below.
    if (i >= patSegs.length) return true;
    const g = patSegs[i];
    // `**` (or a segment that only makes sense with its neighbours) could match anything: assume it does.
    if (g === undefined) return true;
    if (!g.test(dirSegs[i]!)) return false;
  }
  return true;
}

/**
 * One segment of a pattern as a glob of its own, for canSkipDir. Undefined (could match anything)
 * for `**`, and for a segment that is not a pattern on its own: splitting at `/` can cut an escape
 * (`a\/b`) or a class (`[/]`) in two.
 */
function segmentGlob(seg: string): Glob | undefined {
  if (seg.includes('**')) return undefined;
  try {
    return Glob.compile(seg, IGNORE_SYNTAX);
  } catch {
    return undefined;
  }
}

function compile(pattern: string, source: string, line: number): Glob {
  try {
    return Glob.compile(pattern, IGNORE_SYNTAX);
  } catch (e) {
    throw new DimgError('IGNORE_PATTERN_INVALID', `${source}:${line}: ${(e as Error).message}`, 'check the brackets and escapes of the pattern (write \\[ for a literal [)');
  }
}
