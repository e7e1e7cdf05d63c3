/**
 * The spec's JSON Schema, `schemas/images.schema.json`, loaded once from the package. This is the
 * only file of `src/specfile` that reads from disk, and only the package's own immutable asset.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: Record<string, unknown> | undefined;

/** Absolute path of `schemas/images.schema.json` (found upwards from this module, compiled or not). */
export function schemaPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'schemas', 'images.schema.json');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('schemas/images.schema.json is missing from the dimg package');
}

/** The parsed schema (shared, do not mutate). */
export function specSchema(): Record<string, unknown> {
  cached ??= createRequire(import.meta.url)(schemaPath()) as Record<string, unknown>;
  return cached;
}
