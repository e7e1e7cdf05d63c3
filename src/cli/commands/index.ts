/**
 * Registers every command module on the program. Each module exports one `register(program)`;
 * modules that add `dimg image …` subcommands get the group through `imageCommand(program)`.
 * This list is the one place a new command module is wired in: add one import and one call.
 */
import type { Command } from 'commander';
import { register as registerImageLocal } from './image-local.js';
import { register as registerImageArchive } from './image-archive.js';
import { register as registerInfo } from './info.js';
import { register as registerStore } from './store.js';
import { register as registerRegistry } from './registry.js';
import { register as registerSpec } from './spec.js';
import { register as registerBuild } from './build.js';
import { register as registerPlan } from './plan.js';

/** Adds all dimg commands to `program`. */
export function registerCommands(program: Command): void {
  registerImageLocal(program);
  registerImageArchive(program);
  registerInfo(program);
  registerStore(program);
  registerRegistry(program);
  registerSpec(program);
  registerBuild(program);
  registerPlan(program);
}
