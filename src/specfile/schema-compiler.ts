/**
 * The one place that configures ajv for the spec schema. Both the run-time compilation in
 * schema-check.ts and the ahead-of-time compilation in scripts/bundle.mjs (ajv "standalone" code
 * baked into the bundled CLI) call `createSpecAjv`, so the two validators cannot drift apart in
 * options or keywords.
 *
 * ajv is loaded with a synchronous require on first use rather than imported: it is a large
 * CommonJS package, and the bundled CLI only needs it when a spec has schema errors (to re-check
 * anyOf branches) — a valid spec is checked by the precompiled validator alone.
 */
import { createRequire } from 'node:module';
import type { Ajv, Options } from 'ajv';
import { specSchema } from './schema-asset.js';

/** The ajv options the spec schema is compiled with (messages rely on `allErrors` and `verbose`). */
export const SPEC_AJV_OPTIONS: Readonly<Options> = {
  allErrors: true,
  verbose: true,
  strict: true,
  strictTypes: false,
  strictRequired: false,
  allowUnionTypes: true,
};

/**
 * A new ajv instance with the spec schema added (not yet compiled) and dimg's keywords defined.
 * `extra` adds options, e.g. `{ code: { source: true, esm: true } }` for standalone generation.
 */
export function createSpecAjv(extra: Options = {}): Ajv {
  const { Ajv: AjvClass } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
  const ajv = new AjvClass({ ...SPEC_AJV_OPTIONS, ...extra });
  // A documentation-only keyword: the human wording of a `pattern`, used in messages.
  ajv.addKeyword({ keyword: 'patternHint', schemaType: 'string' });
  ajv.addSchema(specSchema());
  return ajv;
}

/** The schema's `$id`, the key its validator is registered under. */
export function specSchemaId(): string {
  return String(specSchema().$id);
}
