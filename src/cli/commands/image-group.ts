/**
 * The `dimg image` command group. Several modules add subcommands to it; `imageCommand` returns the
 * one group (creating it on first use) so they never create two.
 */
import type { Command } from 'commander';

/** The `image` subcommand of `program`, created on first call. */
export function imageCommand(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'image');
  if (existing) return existing;
  return program.command('image').description('manage images: build, ls, inspect, pull, push, save, load, …');
}
