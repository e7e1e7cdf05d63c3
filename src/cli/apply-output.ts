/**
 * The `--progress` flag of apply and watch: which rendering mode (see progress/apply.ts) to use.
 */
import { DimgError } from '../errors.js';
import type { ProgressMode } from '../progress/apply.js';

/** The mode for `--progress=auto`: plain under CI or when stdout is not a terminal. */
export function progressMode(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): ProgressMode {
  if (flag === 'json' || flag === 'plain' || flag === 'tty') return flag;
  if (flag && flag !== 'auto') throw new DimgError('FLAG_INVALID', `--progress must be auto, tty, plain or json, got "${flag}"`, 'e.g. --progress=plain');
  return process.stdout.isTTY && env.CI !== 'true' ? 'tty' : 'plain';
}
