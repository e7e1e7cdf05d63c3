/**
 * Glob patterns for ignore files and COPY/ADD sources, matched without regular expressions.
 *
 * Why not RegExp: a glob like `a*a*a*…*b` becomes `a[^/]*a[^/]*…b`, which V8's backtracking engine
 * takes exponential time to reject on a long name, synchronously, so the process also stops handling
 * signals (issue #20). Go (and so Docker) uses an automaton-based engine. Here a pattern compiles to a
 * small NFA (one state per wildcard or character) and a name is matched by advancing the set of live
 * states one character at a time: O(pattern × name) time, O(pattern) memory, whatever the input.
 *
 * Syntax is Go's filepath.Match as moby's patternmatcher applies it: `*` is any run of characters
 * within one path segment, `?` one character (a code point) other than `/`, `[…]` a class with ranges
 * (`a-z`), negation (`^`, and `!` as shells write it) and `\` escapes; `\x` is a literal `x`; with
 * `globstar`, `**\/` is zero or more whole directories and any other `**` any run of characters, `/`
 * included.
 */
import { DimgError } from '../errors.js';
import type { IgnoreMatcher } from './ignore.js';

/** Which dialect a pattern is written in. */
export interface GlobSyntax {
  /** `**` spans directories (ignore files). Otherwise `**` is two `*`, within one segment. */
  globstar: boolean;
  /** `\x` is a literal `x` (ignore files). Otherwise `\` is an ordinary character (COPY sources). */
  escapes: boolean;
  /**
   * A `[` that does not open a well-formed class is a literal `[` (COPY sources, where Docker users
   * name files like `a[1`). Otherwise it makes the pattern invalid (GLOB_INVALID), as in Go.
   */
  lenientBrackets: boolean;
}

/** The dialect of `.dockerignore` / `.dimgignore` lines. */
export const IGNORE_SYNTAX: GlobSyntax = { globstar: true, escapes: true, lenientBrackets: false };

/** The dialect of one segment of a COPY/ADD source path. */
export const COPY_SEGMENT_SYNTAX: GlobSyntax = { globstar: false, escapes: false, lenientBrackets: true };

/** One NFA state: what it consumes, and whether entering it also enters the next state (a `*`-like run). */
type State =
  | { kind: 'char'; cp: number }
  /** `?`: one code point other than `/`. */
  | { kind: 'any' }
  | { kind: 'class'; negated: boolean; ranges: readonly (readonly [number, number])[] }
  /** `*`: zero or more code points other than `/`. */
  | { kind: 'star' }
  /** `**` not followed by `/`: zero or more code points, `/` included. */
  | { kind: 'anyRun' }
  /** `**\/`: zero or more whole directories, i.e. nothing or any run of characters ending in `/`. */
  | { kind: 'dirRun' };

const SLASH = 0x2f;
const BACKSLASH = 0x5c;

/**
 * A compiled glob pattern. Immutable as a pattern; `test` may be called any number of times. The
 * matcher's scratch buffers live on the instance (matching is synchronous and never re-entered), so
 * a match allocates nothing: ignore files test every walked path against every pattern.
 */
export class Glob {
  /** `inSet[i] === gen` when state i is in the set being built at generation `gen`. */
  private readonly inSet: Int32Array;
  /** `entered[i] === gen` when state i was entered at generation `gen` (stops run chains early). */
  private readonly entered: Int32Array;
  /** Double-buffered state sets. */
  private current: number[] = [];
  private next: number[] = [];
  /** One per step of any run: bumping it empties both marks without clearing them. */
  private gen = 0;

  private constructor(
    /** The pattern as written, for messages. */
    readonly pattern: string,
    private readonly states: readonly State[],
  ) {
    this.inSet = new Int32Array(states.length + 1);
    this.entered = new Int32Array(states.length + 1);
  }

  /** Compiles `pattern`. Throws GLOB_INVALID (naming the pattern and the fault) when it is malformed. */
  static compile(pattern: string, syntax: GlobSyntax): Glob {
    return new Glob(pattern, parse(pattern, syntax));
  }

  /** True when the whole of `name` matches the pattern. */
  test(name: string): boolean {
    return this.run(name, false);
  }

  /**
   * True when `path` or one of its parent directories matches: the whole path, or a prefix of it
   * that ends just before a `/`. One pass over the path, however deep it is.
   */
  testPathOrParent(path: string): boolean {
    return this.run(path, true);
  }

  /** Starts a new generation: both sets of marks are empty again. */
  private bump(): void {
    if (this.gen === 0x7fffffff) {
      this.inSet.fill(0);
      this.entered.fill(0);
      this.gen = 0;
    }
    this.gen++;
  }

  private add(list: number[], i: number): void {
    if (this.inSet[i] !== this.gen) {
      this.inSet[i] = this.gen;
      list.push(i);
    }
  }

  // Entering a state adds it, and for a run (`*`, `**`) also enters the one after it, since a run
  // may match nothing. Runs only ever skip forward, so a loop does instead of recursion.
  private enter(list: number[], from: number): void {
    const states = this.states;
    const end = states.length;
    for (let i = from; i <= end && this.entered[i] !== this.gen; i++) {
      this.entered[i] = this.gen;
      this.add(list, i);
      if (i === end) return;
      const k = states[i]!.kind;
      if (k !== 'star' && k !== 'anyRun' && k !== 'dirRun') return;
    }
  }

  private run(input: string, parents: boolean): boolean {
    const states = this.states;
    const end = states.length;
    let current = this.current;
    let next = this.next;
    current.length = 0;
    this.bump();
    this.enter(current, 0);
    let matched: boolean | undefined;
    for (const ch of input) {
      const cp = ch.codePointAt(0)!;
      if (parents && cp === SLASH && this.inSet[end] === this.gen) {
        matched = true;
        break;
      }
      this.bump();
      next.length = 0;
      for (const i of current) {
        if (i === end) continue;
        const s = states[i]!;
        switch (s.kind) {
          case 'char':
            if (cp === s.cp) this.enter(next, i + 1);
            break;
          case 'any':
            if (cp !== SLASH) this.enter(next, i + 1);
            break;
          case 'class':
            if (inClass(s, cp)) this.enter(next, i + 1);
            break;
          case 'star':
            if (cp !== SLASH) this.enter(next, i);
            break;
          case 'anyRun':
            this.enter(next, i);
            break;
          case 'dirRun':
            // Inside `(.*/)`: any character keeps it open; only a `/` may close it.
            if (cp === SLASH) this.enter(next, i);
            else this.add(next, i);
            break;
        }
      }
      if (next.length === 0) {
        matched = false;
        break;
      }
      [current, next] = [next, current];
    }
    if (matched === undefined) matched = this.inSet[end] === this.gen;
    // Keep whichever arrays grew, for the next run.
    this.current = current;
    this.next = next;
    return matched;
  }
}

/** A matcher for one segment of a COPY/ADD source (`*.txt`, `file?.[ch]`); never throws. */
export function globSegmentMatcher(segment: string): Glob {
  return Glob.compile(segment, COPY_SEGMENT_SYNTAX);
}

function inClass(s: { negated: boolean; ranges: readonly (readonly [number, number])[] }, cp: number): boolean {
  let hit = false;
  for (const [lo, hi] of s.ranges) {
    if (lo <= cp && cp <= hi) {
      hit = true;
      break;
    }
  }
  return hit !== s.negated;
}

function parse(pattern: string, syntax: GlobSyntax): State[] {
  const cps = Array.from(pattern, (c) => c.codePointAt(0)!);
  const states: State[] = [];
  const invalid = (why: string) => new DimgError('GLOB_INVALID', `invalid pattern "${pattern}": ${why}`, 'check the brackets and escapes of the pattern');
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i]!;
    if (c === 0x2a /* * */) {
      if (syntax.globstar && cps[i + 1] === 0x2a) {
        i++;
        if (cps[i + 1] === SLASH) {
          i++;
          states.push({ kind: 'dirRun' });
        } else {
          states.push({ kind: 'anyRun' });
        }
      } else if (states[states.length - 1]?.kind !== 'star') {
        // `**` without globstar is one `*`: consecutive runs add states but no meaning.
        states.push({ kind: 'star' });
      }
    } else if (c === 0x3f /* ? */) {
      states.push({ kind: 'any' });
    } else if (c === 0x5b /* [ */) {
      const cls = parseClass(cps, i + 1, syntax);
      if (typeof cls === 'string') {
        if (!syntax.lenientBrackets) throw invalid(cls);
        states.push({ kind: 'char', cp: c });
      } else {
        states.push(cls.state);
        i = cls.end;
      }
    } else if (c === BACKSLASH && syntax.escapes) {
      i++;
      if (i >= cps.length) throw invalid('it ends with an unescaped \\');
      states.push({ kind: 'char', cp: cps[i]! });
    } else {
      states.push({ kind: 'char', cp: c });
    }
  }
  return states;
}

/**
 * Parses a class whose body starts at `start` (just after `[`), as Go does: optional `^`/`!`, then at
 * least one item (a character or `lo-hi` range, either end escapable with `\`), then `]`. Returns the
 * state and the index of the closing `]`, or why the class is malformed.
 */
function parseClass(cps: number[], start: number, syntax: GlobSyntax): { state: State; end: number } | string {
  let i = start;
  let negated = false;
  if (cps[i] === 0x5e /* ^ */ || cps[i] === 0x21 /* ! */) {
    negated = true;
    i++;
  }
  const ranges: [number, number][] = [];
  const one = (): number | string => {
    const c = cps[i];
    if (c === undefined) return 'a [ is never closed with ]';
    if (c === 0x2d /* - */ || c === 0x5d /* ] */) return ranges.length === 0 && c === 0x5d ? 'a class [] is empty' : `a class has a misplaced "${String.fromCodePoint(c)}"`;
    if (c === BACKSLASH && syntax.escapes) {
      i++;
      if (cps[i] === undefined) return 'a [ is never closed with ]';
    }
    return cps[i++]!;
  };
  for (;;) {
    if (cps[i] === 0x5d && ranges.length > 0) return { state: { kind: 'class', negated, ranges }, end: i };
    const lo = one();
    if (typeof lo === 'string') return lo;
    let hi = lo;
    if (cps[i] === 0x2d) {
      i++;
      const h = one();
      if (typeof h === 'string') return h;
      hi = h;
    }
    ranges.push([lo, hi]);
  }
}

/** Whether a string has a wildcard (`*`, `?`, `[`) that makes it a pattern. */
export const WILDCARD = /[*?[]/;

/**
 * How expandSource looks into a source root (a context, a `from` image's root). Paths are
 * root-relative and '/'-separated, '' is the root; both answer for the path as written, resolving
 * symlinks in it only inside the root (see layer/scoped-path.ts).
 */
export interface SourceTree<T> {
  /** What is at `rel` (a symlink counts as itself, whatever it points at), or undefined when nothing is. */
  lookup(rel: string): Promise<T | undefined>;
  /** Names in the directory `rel`, in the order matches should come out; undefined when it is none. */
  list(rel: string): Promise<readonly string[] | undefined>;
}

/** One path a source names, with what `SourceTree.lookup` found there. */
export interface SourceMatch<T> {
  path: string;
  entry: T;
}

/**
 * The paths (root-relative, as written: a match below a symlinked directory keeps the link's name)
 * that the copy/add source `rel` names in `tree`, each with its entry: `rel` itself when it has no
 * wildcard and exists, else every match of its wildcard segments. `rel` is normalised, without a
 * leading `/`, and `.` for the root. One implementation for the spec's checks and the builder, so
 * both see the same files. Each match is looked up once.
 */
export async function expandSource<T>(tree: SourceTree<T>, rel: string): Promise<SourceMatch<T>[]> {
  const segs = rel === '.' ? [] : rel.split('/');
  let current: { path: string; entry?: T }[] = [{ path: '' }];
  // A run of plain segments is looked up once, as one path, at the next wildcard segment or the
  // end: a lookup checks every parent on the way, so `a/b/c` exists only when `a` and `a/b` do.
  let plain: string[] = [];
  const lookupPlain = async (): Promise<void> => {
    if (plain.length === 0) return;
    const run = plain.join('/');
    plain = [];
    const next: { path: string; entry: T }[] = [];
    for (const { path: base } of current) {
      const path = base ? `${base}/${run}` : run;
      const entry = await tree.lookup(path);
      if (entry !== undefined) next.push({ path, entry });
    }
    current = next;
  };
  for (const seg of segs) {
    if (!WILDCARD.test(seg)) {
      plain.push(seg);
      continue;
    }
    await lookupPlain();
    if (current.length === 0) return [];
    const re = globSegmentMatcher(seg);
    const next: { path: string }[] = [];
    for (const { path: base } of current) {
      for (const n of (await tree.list(base)) ?? []) if (re.test(n)) next.push({ path: base ? `${base}/${n}` : n });
    }
    current = next;
    if (current.length === 0) return [];
  }
  await lookupPlain();
  // Matches of a final wildcard segment (and the root, for `.`) have been listed, not yet looked up.
  const out: SourceMatch<T>[] = [];
  for (const m of current) {
    const entry = m.entry !== undefined ? m.entry : await tree.lookup(m.path);
    if (entry !== undefined) out.push({ path: m.path, entry });
  }
  return out;
}

/**
 * The matches the ignore rules keep: the rules apply to where a match resolves (`entry.rel`, so a
 * link cannot bring back what they exclude), and the source root itself is always kept.
 */
export function keptSources<T extends { readonly rel: string }>(matches: readonly SourceMatch<T>[], matcher: IgnoreMatcher | undefined): SourceMatch<T>[] {
  if (!matcher) return [...matches];
  return matches.filter(({ entry }) => entry.rel === '' || !matcher.ignores(entry.rel));
}
