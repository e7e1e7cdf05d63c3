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
