/**
 * The spec schema's validator compiled ahead of time, or undefined.
 *
 * As compiled by tsc this module has no validator, and schema-check.ts compiles the schema when it is
 * first needed (a few hundred milliseconds). scripts/bundle.mjs replaces this module in the bundled CLI
 * with ajv's standalone code for the same schema and options (schema-compiler.ts), so `dimg` does not
 * compile the schema on every start. Whichever is used, errors have the same shape.
 */
import type { ValidateFunction } from 'ajv';

/** The root validator generated at build time; undefined outside the bundle. */
export const precompiledRootValidator: ValidateFunction | undefined = undefined;
