/**
 * Checks of the files an image reads from its context: every `copy`/`add` source must stay inside
 * the context, exist (globs must match something), and not be excluded by the context's ignore
 * file. Reads through the `SpecFs` port only.
 */
import { posix } from 'node:path';
import type { SpecFs } from './ports.js';
import { IGNORE_FILES, IgnoreMatcher } from './ignore.js';
import type { CopyStep } from './model.js';
import { globSegmentMatcher } from './glob.js';

/** The ignore matcher of a context (`.dimgignore`, else `.dockerignore`), or an empty one. */
export async function contextIgnore(fs: SpecFs, context: string): Promise<{ matcher: IgnoreMatcher; file?: string; error?: string }> {
  for (const name of IGNORE_FILES) {
    const text = await fs.readText(posix.join(context, name));
    if (text !== undefined) {
      try {
        return { matcher: IgnoreMatcher.parse(text, name), file: name };
      } catch (e) {
        return { matcher: new IgnoreMatcher([]), file: name, error: (e as Error).message };
      }
    }
  }
  return { matcher: new IgnoreMatcher([]) };
}

const GLOB = /[*?[]/;

/**
 * Problems with one copy step's sources (messages without location), `[]` when all is well.
 * Sources are relative to the context; a leading `/` means the context root, as in Docker.
 */
export async function copySourceProblems(fs: SpecFs, context: string, step: CopyStep, ignore: { matcher: IgnoreMatcher; file?: string }): Promise<string[]> {
  const out: string[] = [];
  for (const src of step.src) {
    const rel = posix.normalize(src.replace(/^\/+/, '') || '.');
    if (rel === '..' || rel.startsWith('../')) {
      out.push(`${step.kind} source "${src}" is outside the context (${context})`);
      continue;
    }
    const matches = GLOB.test(rel) ? await glob(fs, context, rel) : (await fs.stat(posix.join(context, rel))) ? [rel] : [];
    if (matches.length === 0) {
      out.push(GLOB.test(rel) ? `${step.kind} source "${src}" matches no file in the context (${context})` : `${step.kind} source "${src}" does not exist in the context (${context})`);
      continue;
    }
    if (rel !== '.' && matches.every((m) => ignore.matcher.ignores(m))) {
      out.push(`${step.kind} source "${src}" is excluded by the context's ${ignore.file ?? 'ignore file'}`);
    }
  }
  return out;
}

/** Paths (relative) matching a glob whose wildcards may appear in any segment. */
async function glob(fs: SpecFs, root: string, pattern: string): Promise<string[]> {
  let current = [''];
  for (const seg of pattern.split('/')) {
    const next: string[] = [];
    for (const dir of current) {
      if (!GLOB.test(seg)) {
        const p = dir === '' ? seg : `${dir}/${seg}`;
        if (await fs.stat(posix.join(root, p))) next.push(p);
        continue;
      }
      const matcher = globSegmentMatcher(seg);
      for (const name of (await fs.readDir(posix.join(root, dir))) ?? []) if (matcher.test(name)) next.push(dir === '' ? name : `${dir}/${name}`);
    }
    current = next;
    if (current.length === 0) break;
  }
  return current;
}

