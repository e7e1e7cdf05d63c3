/**
 * Tag templates: `${git.sha}`, `${git.short}`, `${git.branch}`, `${env.NAME}`,
 * `${env.NAME:-default}` and `${date}` (UTC `YYYYMMDD`). Pure: the values come in a context.
 */
import type { GitInfo } from './ports.js';

/** Values a template may use. `git` is undefined when the spec is not in a git checkout. */
export interface TemplateContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly git?: GitInfo;
  /** The clock's instant, for `${date}`. */
  readonly now: Date;
}

/** A rendered template, or the first problem in it with its offset in the template text. */
export type Rendered = { readonly ok: true; readonly value: string } | { readonly ok: false; readonly message: string; readonly offset: number };

const EXPR = /\$\{([^}]*)\}/g;

/** True when the template refers to git (so the caller knows to ask the git port). */
export function usesGit(template: string): boolean {
  for (const m of template.matchAll(EXPR)) if (m[1]!.trim().startsWith('git.')) return true;
  return false;
}

/** Git's branch names may hold `/` and other characters tags cannot; they become `-`. */
export function sanitiseForTag(s: string): string {
  return s.replace(/[^\w.-]/g, '-').replace(/^[.-]+/, '');
}

/** `YYYYMMDD` of `d` in UTC. */
export function utcDate(d: Date): string {
  return `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`;
}

/** Renders every `${…}` of `template`; the first unknown or unset variable is the result's problem. */
export function renderTemplate(template: string, ctx: TemplateContext): Rendered {
  let out = '';
  let last = 0;
  for (const m of template.matchAll(EXPR)) {
    const offset = m.index!;
    out += template.slice(last, offset);
    last = offset + m[0].length;
    const r = evaluate(m[1]!.trim(), ctx);
    if (typeof r !== 'string') return { ok: false, message: r.message, offset };
    out += r;
  }
  const rest = template.slice(last);
  const stray = rest.indexOf('${');
  if (stray >= 0) return { ok: false, message: 'unterminated "${" (a template variable ends with "}")', offset: last + stray };
  return { ok: true, value: out + rest };
}

function evaluate(expr: string, ctx: TemplateContext): string | { message: string } {
  if (expr === 'date') return utcDate(ctx.now);
  const env = /^env\.([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/.exec(expr);
  if (env) {
    const value = ctx.env[env[1]!];
    if (value !== undefined && value !== '') return value;
    if (env[2] !== undefined) return env[2];
    return { message: `environment variable ${env[1]} is not set and "\${${expr}}" has no default (write \${env.${env[1]}:-default})` };
  }
  if (expr === 'git.sha' || expr === 'git.short' || expr === 'git.branch') {
    if (!ctx.git) return { message: `"\${${expr}}" needs a git checkout, and the spec is not inside one` };
    if (expr === 'git.sha') return ctx.git.sha;
    if (expr === 'git.short') return ctx.git.short;
    if (ctx.git.branch === undefined) return { message: '"${git.branch}" is unavailable: HEAD is detached (not on a branch)' };
    return sanitiseForTag(ctx.git.branch);
  }
  return { message: `unknown template variable "\${${expr}}" (known: git.sha, git.short, git.branch, env.NAME, env.NAME:-default, date)` };
}
