/**
 * Numeric flag parsing shared by the commands that build (build, apply, watch).
 */
import { DimgError } from '../errors.js';

/** Parses a positive integer flag value or fails with FLAG_INVALID naming the flag. */
export function positiveInt(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new DimgError('FLAG_INVALID', `${flag} must be a positive integer, got "${v}"`, `e.g. ${flag} 4`);
  return n;
}
