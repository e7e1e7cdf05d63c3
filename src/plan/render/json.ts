/**
 * The machine-readable plan: the Plan data itself, versioned (`formatVersion`), plus the summary.
 * `dimg apply plan.json` reads exactly this back.
 */
import { DimgError, messageOf } from '../../errors.js';
import { PLAN_FORMAT_VERSION, summarize, targetReference, type Plan, type TargetRef } from '../types.js';

/** The plan as pretty JSON with a `summary` member (ignored when read back). */
export function renderPlanJson(plan: Plan): string {
  return `${JSON.stringify({ ...plan, summary: summarize(plan) }, null, 2)}\n`;
}

/**
 * Parses a saved plan, refusing other format versions and malformed files with PLAN_INVALID. Every
 * target's reference is parsed here, once (the file keeps the string form, as plans always have), so
 * a plan with a bad reference is refused before anything runs and code reads targets parsed.
 */
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
  const loaded: Plan = {
    ...plan,
    ownership: plan.ownership ?? [],
    warnings: plan.warnings ?? [],
    options: plan.options ?? { prune: false, targets: [] },
  };
  checkTargets(loaded, file);
  return loaded;
}

/** Parses every target of a loaded plan (remembered for `targetReference`); PLAN_INVALID names a bad one. */
function checkTargets(loaded: Plan, file: string): void {
  const again = 'make the plan again with `dimg plan -o plan.json`';
  const targets: [string, TargetRef | undefined][] = [
    ...loaded.actions.map((a) => [a.id, 'target' in a ? a.target : undefined] as [string, TargetRef | undefined]),
    ...loaded.ownership.map((o) => [`${o.kind} ownership change`, o.target] as [string, TargetRef]),
  ];
  for (const [what, target] of targets) {
    if (target === undefined) continue;
    const shaped = typeof target === 'object' && target !== null;
    if (!shaped || typeof target.ref !== 'string' || typeof target.registry !== 'string') {
      throw new DimgError('PLAN_INVALID', `${file}: ${what} has no valid target`, again);
    }
    try {
      targetReference(target);
    } catch (e) {
      throw new DimgError('PLAN_INVALID', `${file}: the target of ${what} is not a reference: ${messageOf(e)}`, again);
    }
  }
}
