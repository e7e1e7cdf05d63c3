/**
 * How progress output shows elapsed time. Shared by the build and apply renderers (and through them
 * by the CLI and the watch loop), so a step timing reads the same everywhere.
 */

/** Durations for step timings: `0.4s`, `12.3s`, `2m05s`. */
export function humanDuration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return `${m}m${String(s).padStart(2, '0')}s`;
}
