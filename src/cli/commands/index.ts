/**
 * Registers every command module on the program. Each module exports one `register(program)`.
 * Keep this list sorted; it is the one place a new command is wired in.
 */
import type { Command } from 'commander';

/** Adds all dimg commands to `program`. */
export function registerCommands(program: Command): void {
  void program;
}
