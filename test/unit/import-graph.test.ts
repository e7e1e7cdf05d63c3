/**
 * The import graph runs one way: the CLI imports the library, never the reverse. A library module
 * importing `src/cli/` would drag commander wiring and process-level behaviour (exit codes, stdout)
 * into the watch loop or any embedder. Checked over the TypeScript sources, static and dynamic
 * imports and re-exports alike.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { REPO_ROOT } from '../support/cli.js';

const SRC = join(REPO_ROOT, 'src');
const CLI = join(SRC, 'cli');

/** Every `.ts` file under `dir`. */
function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Relative module specifiers of `from '…'`, `import '…'` and `import('…')` in `text`. */
function relativeImports(text: string): string[] {
  const out: string[] = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]+)\1/g;
  for (const m of text.matchAll(pattern)) out.push(m[2]!);
  return out;
}

const isUnder = (path: string, dir: string) => path === dir || path.startsWith(dir + sep);

test('import-graph: the specifier scanner sees static, dynamic, side-effect imports and re-exports', () => {
  const text = [
    "import { a } from '../cli/a.js';",
    "import type { B } from './b.js';",
    "export { c } from '../../cli/c.js';",
    "import './side.js';",
    "const { d } = await import('../cli/d.js');",
    "import { e } from 'node:fs';",
  ].join('\n');
  assert.deepEqual(relativeImports(text), ['../cli/a.js', './b.js', '../../cli/c.js', './side.js', '../cli/d.js']);
});

test('import-graph: no module under src/ outside src/cli imports from src/cli', () => {
  const files = sources(SRC).filter((f) => !isUnder(f, CLI));
  assert.ok(files.length > 50, `expected the library sources under ${SRC}, found ${files.length}`);
  const backwards: string[] = [];
  for (const file of files) {
    for (const spec of relativeImports(readFileSync(file, 'utf8'))) {
      if (isUnder(resolve(dirname(file), spec), CLI)) backwards.push(`${relative(REPO_ROOT, file)} imports ${spec}`);
    }
  }
  assert.deepEqual(backwards, [], `library modules must not import the CLI:\n  ${backwards.join('\n  ')}`);
});

test('no blob path leaves the store: code outside src/store reads blobs through the store', () => {
  const STORE = join(SRC, 'store');
  const leaks = sources(SRC)
    .filter((file) => !isUnder(file, STORE))
    .filter((file) => /\bblobs\s*\.\s*path\s*\(/.test(readFileSync(file, 'utf8')))
    .map((file) => relative(REPO_ROOT, file));
  assert.deepEqual(leaks, [], 'use store.blobs.open / openUnverified / openRandomAccess instead of a path');
});
