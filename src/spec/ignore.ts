/**
 * `.dockerignore` / `.dimgignore` matching with Docker's semantics: one pattern a line, `#`
 * comments, `!` exceptions, the last matching pattern wins, patterns are cleaned and a leading `/`
 * is dropped (everything is relative to the context root), `*` and `?` stay within one path
 * segment, `**` spans any number of segments, and a pattern that matches a directory also matches
 * everything below it. Pure: the caller reads the file.
 */
import { posix } from 'node:path';
import { DimgError } from '../errors.js';

/** Names of the ignore files, in order of preference (`.dimgignore` wins when both exist). */
export const IGNORE_FILES = ['.dimgignore', '.dockerignore'] as const;

interface Pattern {
  readonly text: string;
  readonly exclusion: boolean;
  readonly re: RegExp;
  readonly segments: readonly string[];
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
      patterns.push({ text, exclusion, re: compile(text, source, i + 1), segments: text.split('/') });
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
    const parents = path.split('/');
    parents.pop();
    let matched = false;
    for (const p of this.patterns) {
      // Only a pattern that could flip the current answer needs evaluating.
      if (p.exclusion !== matched) continue;
      let hit = p.re.test(path);
      for (let i = 1; !hit && i <= parents.length; i++) hit = p.re.test(parents.slice(0, i).join('/'));
      if (hit) matched = !p.exclusion;
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
function couldMatchBelow(patSegs: readonly string[], dirSegs: readonly string[]): boolean {
  for (let i = 0; i < dirSegs.length; i++) {
    const ps = patSegs[i];
    // The pattern ends above the directory: it names an ancestor, which re-includes everything below.
    if (ps === undefined) return true;
    if (ps.includes('**')) return true;
    if (!compileSegment(ps).test(dirSegs[i]!)) return false;
  }
  return true;
}

const segmentCache = new Map<string, RegExp>();

function compileSegment(seg: string): RegExp {
  let re = segmentCache.get(seg);
  if (!re) {
    re = new RegExp(`^${translate(seg, true)}$`);
    segmentCache.set(seg, re);
  }
  return re;
}

function compile(pattern: string, source: string, line: number): RegExp {
  try {
    return new RegExp(`^${translate(pattern, false)}$`);
  } catch {
    throw new DimgError('IGNORE_PATTERN_INVALID', `${source}:${line}: invalid pattern "${pattern}"`, 'check the brackets and escapes of the pattern');
  }
}

/** Glob to regex source, as Docker's patternmatcher does it. */
function translate(pattern: string, oneSegment: boolean): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (!oneSegment && pattern[i + 1] === '*') {
        i++;
        // `**/` matches zero or more whole directories; a trailing `**` matches the rest.
        if (pattern[i + 1] === '/') {
          i++;
          out += '(?:.*/)?';
        } else {
          out += '.*';
        }
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '\\') {
      i++;
      if (i < pattern.length) out += escapeRe(pattern[i]!);
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) throw new Error('unterminated class');
      let body = pattern.slice(i + 1, end);
      if (body.startsWith('!') || body.startsWith('^')) body = `^${body.slice(1)}`;
      out += `[${body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else {
      out += escapeRe(c);
    }
  }
  return out;
}

function escapeRe(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}
