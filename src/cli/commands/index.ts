/**
 * Registers the command modules on the program. Each module exports one `register(program)`;
 * modules that add `dimg image …` subcommands get the group through `imageCommand(program)`.
 *
 * Loading every module (and through them the builder, registry client, schema validator…) costs far
 * more than most commands' own work, so only the modules that define the command on the command line
 * are imported; help, unknown commands and completion load them all. To add a command module, list it
 * in MODULES and name its commands in COMMANDS.
 */
import type { Command } from 'commander';

type Register = (program: Command) => void;

const MODULES: Record<string, () => Promise<{ register: Register }>> = {
  'image-local': () => import('./image-local.js'),
  'image-archive': () => import('./image-archive.js'),
  info: () => import('./info.js'),
  store: () => import('./store.js'),
  registry: () => import('./registry.js'),
  spec: () => import('./spec.js'),
  build: () => import('./build.js'),
  plan: () => import('./plan.js'),
  watch: () => import('./watch.js'),
};

/** Top-level command → the modules defining it (`image` subcommands are listed as `image SUB`). */
const COMMANDS: Record<string, string[]> = {
  build: ['build'],
  plan: ['plan'],
  apply: ['plan'],
  lock: ['plan'],
  validate: ['spec'],
  schema: ['spec'],
  watch: ['watch'],
  info: ['info'],
  store: ['store'],
  login: ['registry'],
  logout: ['registry'],
  pull: ['registry'],
  push: ['registry'],
  images: ['image-local'],
  rmi: ['image-local'],
  'image build': ['build'],
  'image import': ['image-archive'],
  'image save': ['image-archive'],
  'image load': ['image-archive'],
  'image ls': ['image-local', 'registry'],
  'image list': ['image-local', 'registry'],
  'image inspect': ['image-local'],
  'image history': ['image-local'],
  'image tag': ['image-local'],
  'image rm': ['image-local'],
  'image remove': ['image-local'],
  'image prune': ['image-local'],
  'image pull': ['registry'],
  'image push': ['registry'],
  'image copy': ['registry'],
  'image tags': ['registry'],
};

/** Adds the commands `argv` needs (all of them when it names none or asks for help) to `program`. */
export async function registerCommands(program: Command, argv: string[] = process.argv): Promise<void> {
  const words = commandWords(argv.slice(2));
  const wanted = (words.length >= 2 && COMMANDS[`${words[0]} ${words[1]}`]) || (words[0] !== 'image' && words[0] && COMMANDS[words[0]]) || undefined;
  const names = wanted ?? Object.keys(MODULES);
  const modules = await Promise.all(names.map((n) => MODULES[n]!()));
  for (const m of modules) m.register(program);
}

/** The leading non-option words of the arguments (global options like `--root DIR` skipped). */
function commandWords(args: string[]): string[] {
  const words: string[] = [];
  for (let i = 0; i < args.length && words.length < 2; i++) {
    const a = args[i]!;
    if (a === '--help' || a === '-h' || a === 'help') return [];
    if (a === '--root') {
      i++;
      continue;
    }
    if (a.startsWith('-')) {
      if (words.length === 0) continue;
      break;
    }
    words.push(a);
  }
  return words;
}
