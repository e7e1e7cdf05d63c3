/**
 * Renders a plan for people, Terraform-style: one line per action with `+ ~ - =`, its reason, then
 * a summary line, or "No changes." when there is nothing to do.
 */
import type { Action, Plan } from '../types.js';
import { hasChanges, summarize } from '../types.js';

/** Options: `showUnchanged` lists up-to-date tags with `=` (they are counted either way). */
export interface TextOptions {
  showUnchanged?: boolean;
  color?: boolean;
}

const SYMBOL: Record<Action['kind'], string> = { build: '+', push: '+', retag: '~', delete: '-', unchanged: '=' };

/** The plan as text ending in a newline. */
export function renderPlanText(plan: Pick<Plan, 'actions' | 'warnings'> & Partial<Pick<Plan, 'ownership'>>, opts: TextOptions = {}): string {
  const lines: string[] = [];
  const paint = (code: string, s: string) => (opts.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const colorOf: Record<Action['kind'], string> = { build: '32', push: '32', retag: '33', delete: '31', unchanged: '2' };
  for (const a of plan.actions) {
    if (a.kind === 'unchanged' && !opts.showUnchanged) continue;
    const symbol = a.kind === 'push' && a.current ? '~' : SYMBOL[a.kind];
    lines.push(paint(colorOf[a.kind], `  ${symbol} ${describe(a)}`));
  }
  // Ownership record bookkeeping is a write too: shown, counted, and never hidden behind "No changes".
  for (const o of plan.ownership ?? []) {
    lines.push(paint('33', o.kind === 'adopt' ? `  ~ own    ${o.target.ref}  (${short(o.digest)}, ${o.reason})` : `  ~ forget ${o.target.ref}  (recorded ${short(o.digest)}, ${o.reason})`));
  }
  for (const w of plan.warnings) lines.push(`Warning: ${w.subject}: ${w.message}`);
  const s = summarize(plan);
  if (!hasChanges(plan)) {
    lines.push(`No changes. Registries match images.yaml.${s.unchanged ? ` (${s.unchanged} tag${s.unchanged === 1 ? '' : 's'} up to date)` : ''}`);
  } else {
    const records = s.ownership ? `, ${s.ownership} ownership record entr${s.ownership === 1 ? 'y' : 'ies'} to update` : '';
    lines.push('', `Plan: ${s.build} to build, ${s.push} to push, ${s.retag} to retag, ${s.delete} to delete${records}.`);
  }
  return `${lines.join('\n')}\n`;
}

function describe(a: Action): string {
  switch (a.kind) {
    case 'build':
      return `build  ${a.image}  (${a.reason}${a.detail ? `: ${a.detail}` : ''})`;
    case 'push':
      return `push   ${a.target.ref}  (${a.image}: ${a.reason}${a.current ? `, was ${short(a.current)}` : ''})`;
    case 'retag':
      return `retag  ${a.target.ref} → ${short(a.digest)}  (${a.image}: ${a.reason}, same image as ${a.source})`;
    case 'delete':
      return `delete ${a.target.ref}  (${short(a.digest)}, ${a.reason})`;
    case 'unchanged':
      return `       ${a.target.ref}  (${a.image}: up to date${a.digest ? `, ${short(a.digest)}` : ''})`;
  }
}

function short(d: string): string {
  return d.startsWith('sha256:') ? `sha256:${d.slice(7, 19)}` : d;
}
