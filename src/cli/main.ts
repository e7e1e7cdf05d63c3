/**
 * The CLI entry point: builds the commander program from the command modules and renders errors.
 * Commands are thin: parse flags, call one library function, render its result, set the exit code.
 */
import { Command, CommanderError } from 'commander';
import { DimgError } from '../errors.js';
import { registerCommands } from './commands/index.js';
import { CommandCancelled } from './cancellation.js';
import { SIGPIPE_STATUS, stdoutClosed, stdoutError, stdoutFailure, watchStdout } from './stdout-pipe.js';

/** Runs the CLI with `argv` (as process.argv) and resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('dimg');
  program
    .description('A declarative container image compiler: images.yaml in, images in registries out.')
    .version(process.env.npm_package_version ?? '0.1.0', '-v, --version')
    .option('--root <dir>', 'the local store directory (default $DIMG_ROOT or ~/.local/share/dimg)')
    .showSuggestionAfterError(true)
    .exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  watchStdout();
  await registerCommands(program, argv);
  try {
    await program.parseAsync(argv);
    // Output was lost: not a success, even if the work itself finished.
    if (stdoutClosed()) return SIGPIPE_STATUS;
    const broken = stdoutFailure();
    if (broken) return reportError(stdoutError(broken));
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    // A failure of the command's own (a DimgError) is still worth saying; one that only echoes the
    // failed write to stdout is not.
    const broken = stdoutFailure();
    if (broken && !(err instanceof DimgError)) return stdoutClosed() ? SIGPIPE_STATUS : reportError(stdoutError(broken));
    return reportError(err);
  }
}

/** Prints an error the way users see it and returns the exit code. */
export function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    // commander already printed its message; help and version exit 0.
    return err.exitCode === 0 ? 0 : 2;
  }
  if (err instanceof DimgError) {
    process.stderr.write(`error: ${err.message}\n`);
    if (err.hint) process.stderr.write(`hint: ${err.hint}\n`);
    return err instanceof CommandCancelled ? err.exitCode : 1;
  }
  process.stderr.write(`dimg: internal error (a bug, please report it):\n${err instanceof Error ? err.stack : String(err)}\n`);
  return 70;
}
