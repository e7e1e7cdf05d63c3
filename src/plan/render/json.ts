/**
 * The machine-readable plan: the Plan data itself, versioned (`formatVersion`), plus the summary.
 * `dimg apply plan.json` reads exactly this back.
 */
import { DimgError } from '../../errors.js';
import { PLAN_FORMAT_VERSION, summarize, type Plan } from '../types.js';

/** The plan as pretty JSON with a `summary` member (ignored when read back). */
export function renderPlanJson(plan: Plan): string {
  return `${JSON.stringify({ ...plan, summary: summarize(plan) }, null, 2)}\n`;
}

/** Parses a saved plan, refusing other format versions and malformed files with PLAN_INVALID. */
export function parsePlanJson(text: string, file: string): Plan {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new DimgError('PLAN_INVALID', `${file} is not a plan: not valid JSON`, 'make a plan with `dimg plan -o plan.json`');
  }
  const p = data as Partial<Plan>;
  if (typeof p !== 'object' || p === null || !Array.isArray(p.actions) || typeof p.specDigest !== 'string' || typeof p.observedFingerprint !== 'string' || typeof p.specFile !== 'string') {
    throw new DimgError('PLAN_INVALID', `${file} is not a dimg plan`, 'make a plan with `dimg plan -o plan.json`');
  }
  if (p.formatVersion !== PLAN_FORMAT_VERSION) {
    throw new DimgError('PLAN_INVALID', `${file} has plan format ${String(p.formatVersion)}; this dimg reads format ${PLAN_FORMAT_VERSION}`, 'make the plan again with this version of dimg');
  }
  const { summary: _ignored, ...plan } = data as Plan & { summary?: unknown };
  return { ...plan, ownership: plan.ownership ?? [], warnings: plan.warnings ?? [], options: plan.options ?? { prune: false, targets: [] } };
}
