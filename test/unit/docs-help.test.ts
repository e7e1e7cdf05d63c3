/**
 * Docs that cannot drift: every command and long flag that the built CLI's `--help` shows is
 * described in docs/, and every `dimg COMMAND --flag` that docs/ (and the README) name exists.
 *
 * The CLI side is read from `bin/dimg … --help` output, command by command, as a user sees it.
 * The docs side is read from markdown:
 *   - a command is described when a heading names it in a code span (`dimg image ls …`, aliases too);
 *   - a flag of a command is described when it appears in a section whose heading names the command
 *     (sub-sections included), or in the lead of the file that holds such a section (flags shared by
 *     every command of a file, like the registry flags);
 *   - in the reverse direction, every code span and code-block line that starts with `dimg` must name
 *     a real command and only that command's flags, and every flag in the first column of a flag table
 *     must be a flag of the command the table's section names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { dimg, REPO_ROOT } from '../support/cli.js';

/** A command as `--help` describes it: its path (`image ls`), names (with aliases) and long flags. */
interface CliCommand {
  path: string;
  names: string[];
  flags: Set<string>;
  subcommands: Map<string, CliCommand>;
}

const GLOBAL_FLAGS = new Set(['--help']);

/** Parses commander's help text: the long flags of the Options section, the Commands section's names. */
function parseHelp(text: string): { flags: Set<string>; commands: string[][] } {
  const flags = new Set<string>();
  const commands: string[][] = [];
  let section = '';
  for (const line of text.split('\n')) {
    if (/^\S.*:$/.test(line)) {
      section = line;
      continue;
    }
    if (section === 'Options:') {
      const m = /^ {2}(?:-\w, )?(--[a-z][a-z0-9-]*)/.exec(line);
      if (m) flags.add(m[1]!);
    } else if (section === 'Commands:') {
      const m = /^ {2}([a-z][a-z0-9|-]*)/.exec(line);
      if (m && m[1] !== 'help') commands.push(m[1]!.split('|'));
    }
  }
  return { flags, commands };
}

/** At most 4 `--help` runs at once: each loads the whole CLI. */
let running = 0;
const waiting: (() => void)[] = [];
async function helpOf(path: string[]): Promise<string> {
  if (running >= 4) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    const r = await dimg([...path, '--help'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `dimg ${path.join(' ')} --help exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/** Walks `dimg --help` and every command's and subcommand's `--help`. */
async function readCli(): Promise<CliCommand> {
  const top = parseHelp(await helpOf([]));
  const root: CliCommand = { path: '', names: ['dimg'], flags: top.flags, subcommands: new Map() };
  const walk = async (parent: CliCommand, names: string[]): Promise<void> => {
    const path = [parent.path, names[0]!].filter(Boolean).join(' ');
    const help = parseHelp(await helpOf(path.split(' ')));
    const cmd: CliCommand = { path, names, flags: help.flags, subcommands: new Map() };
    for (const n of names) parent.subcommands.set(n, cmd);
    await Promise.all(help.commands.map((sub) => walk(cmd, sub)));
  };
  await Promise.all(top.commands.map((names) => walk(root, names)));
  return root;
}

/** Every distinct command (aliases once), depth first. */
function allCommands(root: CliCommand): CliCommand[] {
  const out: CliCommand[] = [];
  const seen = new Set<CliCommand>();
  const visit = (c: CliCommand) => {
    for (const sub of c.subcommands.values()) {
      if (seen.has(sub)) continue;
      seen.add(sub);
      out.push(sub);
      visit(sub);
    }
  };
  visit(root);
  return out;
}

/** Every name a command is reachable by: `image ls`, `image list`, and `images` for the top-level twin. */
function spellings(c: CliCommand, root: CliCommand): string[] {
  const words = c.path.split(' ');
  const parent = words.length > 1 ? root.subcommands.get(words[0]!)! : root;
  const prefix = words.length > 1 ? `${words[0]} ` : '';
  return c.names.filter((n) => parent.subcommands.get(n) === c).map((n) => prefix + n);
}

/**
 * The spellings whose sections describe a command: its own, and those of commands a heading names
 * together with it (`dimg image ls` … (alias `dimg images`): two commander commands, one description).
 */
function homeSpellings(c: CliCommand, root: CliCommand): string[] {
  const names = new Set(spellings(c, root));
  for (let grown = true; grown; ) {
    grown = false;
    for (const s of DOCS.flatMap((d) => d.sections)) {
      if (![...names].some((n) => headingNames(s.heading, n))) continue;
      for (const span of s.heading.match(/`dimg [^`]*`/g) ?? []) {
        const r = resolve(root, span.slice(1, -1));
        if (!('cmd' in r) || r.cmd === root) continue;
        for (const n of spellings(r.cmd, root)) {
          if (!names.has(n)) {
            names.add(n);
            grown = true;
          }
        }
      }
    }
  }
  return [...names];
}

interface Section {
  file: string;
  level: number;
  heading: string;
  lines: string[];
  /** Lines of this section and of its sub-sections. */
  all: string[];
}

interface DocFile {
  file: string;
  lines: string[];
  sections: Section[];
  /** The file's text before its second heading. */
  lead: string[];
}

function mdFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((n) => {
      const p = join(dir, n);
      return statSync(p).isDirectory() ? mdFiles(p) : n.endsWith('.md') ? [p] : [];
    });
}

/** Splits a markdown file into sections at its headings (headings inside code blocks are not headings). */
function readDoc(path: string): DocFile {
  const file = relative(REPO_ROOT, path);
  const lines = readFileSync(path, 'utf8').split('\n');
  const sections: Section[] = [];
  let fence = false;
  const starts: number[] = [];
  lines.forEach((l, i) => {
    if (l.startsWith('```')) fence = !fence;
    else if (!fence && /^#{1,6} /.test(l)) starts.push(i);
  });
  starts.forEach((s, k) => {
    const level = /^#+/.exec(lines[s]!)![0].length;
    const end = starts[k + 1] ?? lines.length;
    let allEnd = lines.length;
    for (const t of starts.slice(k + 1)) {
      if (/^#+/.exec(lines[t]!)![0].length <= level) {
        allEnd = t;
        break;
      }
    }
    sections.push({ file, level, heading: lines[s]!, lines: lines.slice(s, end), all: lines.slice(s, allEnd) });
  });
  const lead = lines.slice(0, starts[1] ?? lines.length);
  return { file, lines, sections, lead };
}

const DOCS = mdFiles(join(REPO_ROOT, 'docs')).map(readDoc);
const README = readDoc(join(REPO_ROOT, 'README.md'));

/** Does this heading name `dimg SPELLING` in a code span (followed by an argument, a flag or the span's end)? */
function headingNames(heading: string, spelling: string): boolean {
  const spans = heading.match(/`[^`]*`/g) ?? [];
  return spans.some((s) => s === `\`dimg ${spelling}\`` || s.startsWith(`\`dimg ${spelling} `));
}

const longFlags = (text: string): string[] => text.match(/(?<![\w-])--[a-z][a-z0-9-]*/g) ?? [];

/** One `dimg …` use found in the docs: where, and its words. */
interface Use {
  where: string;
  text: string;
  /** The flag table's command: flags of the first column must belong to it. */
  tableOf?: string;
}

/** Code spans and code-block lines that start with `dimg`, and first cells of flag tables. */
function usesIn(doc: DocFile): Use[] {
  const uses: Use[] = [];
  let fence = false;
  let flagTable = false;
  let command = '';
  let commandLevel = 0;
  doc.lines.forEach((line, i) => {
    const where = `${doc.file}:${i + 1}`;
    if (line.startsWith('```')) {
      fence = !fence;
      return;
    }
    if (fence) {
      // `$ dimg …`, `dimg … # comment`, `… | dimg image load`, `A=1 dimg …`
      for (const part of line.replace(/\s#\s.*$/, '').split(/\||&&|;/)) {
        const m = /^\s*(?:\$\s+)?(?:[A-Z_]+=\S*\s+)*(?:npx\s+)?dimg(?:\s+(.*))?$/.exec(part);
        if (m) uses.push({ where, text: `dimg ${m[1] ?? ''}`.trim() });
      }
      return;
    }
    const heading = /^(#+) /.exec(line);
    if (heading) {
      const level = heading[1]!.length;
      const named = /`dimg ([^`]*)`/.exec(line);
      if (named) {
        command = named[1]!;
        commandLevel = level;
      } else if (level <= commandLevel) {
        command = '';
        commandLevel = 0;
      }
    }
    for (const span of line.match(/`[^`]*`/g) ?? []) {
      if (/^`dimg( |`)/.test(span)) uses.push({ where, text: span.slice(1, -1) });
    }
    if (/^\|\s*flag\s*\|/i.test(line)) flagTable = true;
    else if (!line.startsWith('|')) flagTable = false;
    else if (flagTable && !/^\|\s*-+\s*\|/.test(line)) {
      const first = line.split('|')[1]!;
      if (longFlags(first).length > 0) uses.push({ where, text: first, tableOf: command });
    }
  });
  return uses;
}

/** Resolves the command words of `dimg WORDS…` to a command, or says why not. */
function resolve(root: CliCommand, text: string): { cmd: CliCommand; rest: string } | { error: string } {
  const tokens = text.replace(/^dimg\s*/, '').split(/\s+/).filter(Boolean);
  let i = 0;
  while (tokens[i] === '--root') i += 2;
  let cmd = root;
  while (i < tokens.length && cmd.subcommands.size > 0) {
    const word = tokens[i]!.replace(/[,.:;)]+$/, '');
    if (word.startsWith('-') || !/^[a-z]/.test(word)) break;
    // `dimg login/logout`: each alternative must be a command.
    const alternatives = word.split('/');
    const found = alternatives.map((w) => cmd.subcommands.get(w));
    if (found.some((c) => !c)) return { error: `\`${text}\`: "${word}" is not a command of \`dimg ${cmd.path}\``.replace(' `dimg `', ' `dimg`') };
    cmd = found[0]!;
    i++;
    if (alternatives.length > 1) return { cmd, rest: '' };
  }
  return { cmd, rest: tokens.slice(i).join(' ') };
}

test('every command and long flag of --help is described in docs/, and every one docs name exists', async () => {
  const root = await readCli();
  const commands = allCommands(root);
  assert.ok(commands.length >= 20, `expected the whole CLI, found ${commands.map((c) => c.path).join(', ')}`);
  const problems: string[] = [];
  const allDocLines = DOCS.flatMap((d) => d.lines).join('\n');

  // --help → docs
  for (const flag of root.flags) {
    if (!GLOBAL_FLAGS.has(flag) && !longFlags(allDocLines).includes(flag)) problems.push(`global flag ${flag} is in no docs/ file`);
  }
  for (const c of commands) {
    if (c.subcommands.size > 0) {
      if (!allDocLines.includes(`dimg ${c.path}`)) problems.push(`\`dimg ${c.path}\` is in no docs/ file`);
      continue;
    }
    const names = homeSpellings(c, root);
    const home = DOCS.flatMap((d) => d.sections.filter((s) => names.some((n) => headingNames(s.heading, n))).map((s) => ({ d, s })));
    const described = new Set(names.filter((n) => home.some(({ s }) => headingNames(s.heading, n))));
    for (const n of names) {
      if (!described.has(n)) problems.push(`\`dimg ${n}\` has no heading in docs/ (a heading with \`dimg ${n} …\` in a code span, or an alias note)`);
    }
    if (home.length === 0) continue;
    const text = new Set(home.flatMap(({ d, s }) => [...s.all, ...d.lead]).flatMap(longFlags));
    for (const flag of c.flags) {
      if (!GLOBAL_FLAGS.has(flag) && !text.has(flag)) {
        problems.push(`\`dimg ${c.path} ${flag}\` is not described under ${home.map(({ s }) => `${s.file} "${s.heading}"`).join(', ')}`);
      }
    }
  }

  // docs → --help
  for (const doc of [...DOCS, README]) {
    for (const use of usesIn(doc)) {
      if (use.tableOf !== undefined) {
        // A flag table under no `dimg …` heading lists another tool's flags (npm run bench's, say).
        if (!use.tableOf) continue;
        const owner = resolve(root, use.tableOf);
        const known = 'cmd' in owner ? owner.cmd.flags : new Set<string>();
        for (const flag of longFlags(use.text)) {
          if (!known.has(flag) && !GLOBAL_FLAGS.has(flag)) {
            problems.push(`${use.where}: flag table names ${flag}, which \`dimg ${use.tableOf || '…'}\` does not have`);
          }
        }
        continue;
      }
      const r = resolve(root, use.text);
      if ('error' in r) {
        problems.push(`${use.where}: ${r.error}`);
        continue;
      }
      for (const flag of longFlags(r.rest)) {
        if (!r.cmd.flags.has(flag) && !GLOBAL_FLAGS.has(flag) && !root.flags.has(flag)) {
          problems.push(`${use.where}: \`${use.text}\`: \`dimg ${r.cmd.path}\` has no ${flag}`);
        }
      }
    }
  }
  assert.deepEqual(problems, [], `docs and --help disagree:\n  ${problems.join('\n  ')}`);
});

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes. */
const anchorOf = (heading: string) =>
  heading
    .replace(/^#+ /, '')
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, '')
    .replace(/ /g, '-');

test('every relative link of the README, ARCHITECTURE.md and docs/ points at a file (and heading) that exists', () => {
  const docs = [README, readDoc(join(REPO_ROOT, 'ARCHITECTURE.md')), ...DOCS];
  const broken: string[] = [];
  for (const doc of docs) {
    doc.lines.forEach((line, i) => {
      for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        const [path, anchor] = target.split('#') as [string, string | undefined];
        const file = path ? join(REPO_ROOT, doc.file, '..', path) : join(REPO_ROOT, doc.file);
        let ok = false;
        try {
          statSync(file);
          ok = !anchor || !file.endsWith('.md') || readDoc(file).sections.some((s) => anchorOf(s.heading) === anchor);
        } catch {
          ok = false;
        }
        if (!ok) broken.push(`${doc.file}:${i + 1}: ${target}`);
      }
    });
  }
  assert.deepEqual(broken, [], `broken links:\n  ${broken.join('\n  ')}`);
});
