/**
 * Checks of the files an image reads from its context: every `copy`/`add` source must stay inside
 * the context, exist (globs must match something), and not be excluded by the context's ignore
 * file. Reads through the `SpecFs` port only.
 */
import { posix } from 'node:path';
import type { SpecFs } from './ports.js';
import { IGNORE_FILES, IgnoreMatcher } from './ignore.js';
import type { CopyStep } from './model.js';
import { expandSource, keptSources, WILDCARD, type SourceTree } from './glob.js';

/** The ignore matcher of a context (`.dimgignore`, else `.dockerignore`), or an empty one. */
export async function contextIgnore(fs: SpecFs, context: string): Promise<{ matcher: IgnoreMatcher; file?: string; error?: string }> {
  for (const name of IGNORE_FILES) {
    const text = await fs.readTextIn(context, name);
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

/**
 * Problems with one copy step's sources (messages without location), `[]` when all is well.
 * Sources are relative to the context; a leading `/` means the context root, as in Docker. They are
 * looked up as the builder looks them up (inside the context only, see SpecFs.entryIn), and the
 * ignore file applies to where they resolve.
 */
export async function copySourceProblems(fs: SpecFs, context: string, step: CopyStep, ignore: { matcher: IgnoreMatcher; file?: string }): Promise<string[]> {
  const out: string[] = [];
  const tree: SourceTree<{ rel: string }> = {
    lookup: async (rel) => {
      const resolved = await fs.entryIn(context, rel);
      return resolved === undefined ? undefined : { rel: resolved };
    },
    list: (rel) => fs.readDirIn(context, rel),
  };
  for (const src of step.src) {
    const rel = posix.normalize(src.replace(/^\/+/, '') || '.');
    if (rel === '..' || rel.startsWith('../')) {
      out.push(`${step.kind} source "${src}" is outside the context (${context})`);
      continue;
    }
    const matches = await expandSource(tree, rel);
    if (matches.length === 0) {
      out.push(WILDCARD.test(rel) ? `${step.kind} source "${src}" matches no file in the context (${context})` : `${step.kind} source "${src}" does not exist in the context (${context})`);
      continue;
    }
    if (rel !== '.' && keptSources(matches, ignore.matcher).length === 0) {
      out.push(`${step.kind} source "${src}" is excluded by the context's ${ignore.file ?? 'ignore file'}`);
    }
  }
  return out;
}
