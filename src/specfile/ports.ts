/**
 * What the spec loader needs from the outside world, as ports, so the loader itself stays pure:
 * tests pass fakes, `node-ports.ts` wires the real filesystem, process environment, git and clock.
 */

/** Kind of a filesystem entry (symlinks followed). */
export type EntryKind = 'file' | 'dir' | 'other';

/** Read-only filesystem access; every path is absolute. */
export interface SpecFs {
  /** The file's UTF-8 text, or undefined when it does not exist or is not a file. */
  readText(path: string): Promise<string | undefined>;
  /** The entry's kind, or undefined when nothing is there. */
  stat(path: string): Promise<EntryKind | undefined>;
  /**
   * What is at `rel` inside the directory `root`, looked up as builds look up copy sources: symlinks
   * in the parent components are followed but never out of `root` (as in a chroot at `root`), the
   * last component is not followed. Its root-relative resolved path ('' for the root), or undefined
   * when nothing is there.
   */
  entryIn(root: string, rel: string): Promise<string | undefined>;
  /** Names in the directory `rel` inside `root` (every symlink followed inside `root`), or undefined. */
  readDirIn(root: string, rel: string): Promise<string[] | undefined>;
  /** The UTF-8 text of the file `rel` inside `root` (every symlink followed inside `root`), or undefined. */
  readTextIn(root: string, rel: string): Promise<string | undefined>;
}

/** What tag templates can say about the git checkout holding the spec. */
export interface GitInfo {
  /** Full commit id of HEAD. */
  readonly sha: string;
  /** Abbreviated commit id (git's default abbreviation). */
  readonly short: string;
  /** Current branch name; undefined on a detached HEAD. */
  readonly branch?: string;
}

/** Everything `loadSpec` reads besides its arguments. */
export interface SpecPorts {
  readonly fs: SpecFs;
  /** Environment variables for `${env.NAME}` (the process environment in the CLI). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Git facts about `dir`, or undefined when it is not inside a git checkout. Called lazily, once. */
  git(dir: string): Promise<GitInfo | undefined>;
  /** The clock for `${date}`. */
  now(): Date;
  /** Absolute working directory: relative file arguments resolve here and messages are shown relative to it. */
  readonly cwd: string;
}
