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

/** Node modules that reach the disk, the network or other processes. */
const IO_MODULES = /^(node:)?(fs|fs\/promises|child_process|net|http|https|http2|dgram|dns|tls|worker_threads)$/;

/** Every module specifier of `text` (relative or not). */
function allImports(text: string): string[] {
  const out: string[] = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])([^'"]+)\1/g;
  for (const m of text.matchAll(pattern)) out.push(m[2]!);
  return out;
}

/** The `.ts` source a relative specifier of `file` names (`./x.js` → `./x.ts`). */
const sourceOf = (file: string, spec: string) => resolve(dirname(file), spec).replace(/\.js$/, '.ts');

test('import-graph: src/resolve imports from src/builder only its pure graph-and-key module', () => {
  const BUILDER = join(SRC, 'builder');
  const PURE = join(BUILDER, 'dependencies.ts');
  const files = sources(join(SRC, 'resolve'));
  assert.ok(files.length >= 3, `expected the resolve sources, found ${files.length}`);
  const wrong: string[] = [];
  for (const file of files) {
    for (const spec of relativeImports(readFileSync(file, 'utf8'))) {
      const target = sourceOf(file, spec);
      if (isUnder(target, BUILDER) && target !== PURE) wrong.push(`${relative(REPO_ROOT, file)} imports ${spec}`);
    }
  }
  assert.deepEqual(wrong, [], `resolve must key through the ImageKeyer port:\n  ${wrong.join('\n  ')}`);
});

test('import-graph: the builder graph-and-key module and all it imports touch neither disk nor network', () => {
  const seen = new Set<string>();
  const io: string[] = [];
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of allImports(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.')) visit(sourceOf(file, spec));
      else if (IO_MODULES.test(spec)) io.push(`${relative(REPO_ROOT, file)} imports ${spec}`);
    }
  };
  visit(join(SRC, 'builder', 'dependencies.ts'));
  assert.ok(seen.size > 3, `expected dependencies.ts to import the oci and spec helpers, saw ${seen.size} files`);
  assert.deepEqual(io, [], `dependencies.ts must stay pure:\n  ${io.join('\n  ')}`);
});

test('import-graph: no lazy import() in src/builder (lazy loading stays at the command boundary)', () => {
  const lazy = sources(join(SRC, 'builder'))
    .filter((file) => /\bimport\s*\(/.test(readFileSync(file, 'utf8')))
    .map((file) => relative(REPO_ROOT, file));
  assert.deepEqual(lazy, [], 'import statically; split modules if a static import would make a cycle');
});
