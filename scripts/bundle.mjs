#!/usr/bin/env node
/**
 * Bundles the CLI into dist/cli/ (run after `tsc`, by `npm run build`, `npm ci` and `npm test`).
 *
 * Why: a dimg command spends most of its start-up resolving and loading ~250 ES and CommonJS modules
 * (Node's loader does a package.json lookup and URL resolution per import). One entry file plus one
 * chunk per lazily loaded command module cuts that to a handful of files. The spec schema's validator
 * is compiled here with ajv's standalone code generator and baked into the bundle, replacing
 * src/specfile/precompiled-validator.ts, so no run compiles the schema.
 *
 * The tsc output in dist/src stays: the tests import library modules from there, and the bundle is
 * what `bin/dimg` runs.
 */
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(repo, 'dist', 'cli');

/** ajv standalone ESM code exporting `precompiledRootValidator`, from the tsc-compiled schema compiler. */
async function precompiledValidatorSource() {
  const { createSpecAjv, specSchemaId } = await import(join(repo, 'dist', 'src', 'specfile', 'schema-compiler.js'));
  const { default: standaloneCode } = await import('ajv/dist/standalone/index.js');
  const ajv = createSpecAjv({ code: { source: true, esm: true } });
  return standaloneCode(ajv, { precompiledRootValidator: specSchemaId() });
}

let validatorReplaced = false;

/** Replaces src/specfile/precompiled-validator.ts with the generated validator. */
function precompiledValidatorPlugin(source) {
  return {
    name: 'precompiled-validator',
    setup(b) {
      b.onLoad({ filter: /[\\/]src[\\/]specfile[\\/]precompiled-validator\.ts$/ }, () => {
        validatorReplaced = true;
        return { contents: source, loader: 'js', resolveDir: repo };
      });
    },
  };
}

const source = await precompiledValidatorSource();
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { main: join(repo, 'src', 'cli', 'main.ts') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: 'linked',
  // CommonJS dependencies call require() for Node built-ins; give the ES module bundle a real one.
  banner: { js: "import { createRequire as __dimgCreateRequire } from 'node:module'; const require = __dimgCreateRequire(import.meta.url);" },
  plugins: [precompiledValidatorPlugin(source)],
  logLevel: 'warning',
});
// A renamed or moved module would silently leave the CLI compiling the schema on every run.
if (!validatorReplaced) {
  console.error('scripts/bundle.mjs: src/specfile/precompiled-validator.ts was not part of the bundle; update the plugin filter');
  process.exit(1);
}
