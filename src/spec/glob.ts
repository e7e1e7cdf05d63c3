/**
 * Docker's per-segment wildcards for COPY/ADD sources (`*`, `?`, `[…]`, `[!…]`), as a regular
 * expression matching one path segment. Shared by the spec's source checks and the builder.
 */

/** A RegExp matching exactly the names one wildcard path segment `seg` matches. */
export function globSegmentRegex(seg: string): RegExp {
  let re = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = seg.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += `[${seg.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += /[.+^${}()|\\]/.test(c) ? `\\${c}` : c;
  }
  return new RegExp(`^${re}$`);
}

/** Whether a string has a wildcard (`*`, `?`, `[`) that makes it a pattern. */
export const WILDCARD = /[*?[]/;

/**
 * How expandSource looks into a source root (a context, a `from` image's root). Paths are
 * root-relative and '/'-separated, '' is the root; both answer for the path as written, resolving
 * symlinks in it only inside the root (see layer/scoped-path.ts).
 */
export interface SourceTree {
  /** True when something is at `rel`; a symlink counts as itself, whatever it points at. */
  has(rel: string): Promise<boolean>;
  /** Names in the directory `rel`, in the order matches should come out; undefined when it is none. */
  list(rel: string): Promise<readonly string[] | undefined>;
}

/**
 * The paths (root-relative, as written: a match below a symlinked directory keeps the link's name)
 * that the copy/add source `rel` names in `tree`: `rel` itself when it has no wildcard and exists,
 * else every match of its wildcard segments. `rel` is normalised, without a leading `/`, and `.`
 * for the root. One implementation for the spec's checks and the builder, so both see the same files.
 */
export async function expandSource(tree: SourceTree, rel: string): Promise<string[]> {
  let current = [''];
  for (const seg of rel === '.' ? [] : rel.split('/')) {
    const next: string[] = [];
    for (const base of current) {
      if (!WILDCARD.test(seg)) {
        const p = base ? `${base}/${seg}` : seg;
        if (await tree.has(p)) next.push(p);
        continue;
      }
      const re = globSegmentRegex(seg);
      for (const n of (await tree.list(base)) ?? []) if (re.test(n)) next.push(base ? `${base}/${n}` : n);
    }
    current = next;
    if (current.length === 0) break;
  }
  return current;
}
