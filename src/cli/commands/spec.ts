/**
 * `dimg validate [FILE]` and `dimg schema`: check a spec and print every problem with its place, or
 * a one-line summary; print the JSON Schema of images.yaml (for editors and CI linters).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadSpec, DEFAULT_SPEC_FILE, displayPath, formatProblems, specSummary, formatSummary, SpecError } from '../../specfile/index.js';
import { nodeSpecPorts } from '../../specfile/node-ports.js';
import { schemaPath } from '../../specfile/schema-asset.js';

/** Adds `validate` and `schema` to the program. */
export function register(program: Command): void {
  program
    .command('validate')
    .description('check images.yaml: schema, image graph, references, registries, tags and files; print every problem')
    .argument('[file]', 'the spec file', DEFAULT_SPEC_FILE)
    .option('-q, --quiet', 'print nothing when the spec is valid')
    .action(async (file: string, opts: { quiet?: boolean }) => {
      const ports = nodeSpecPorts();
      try {
        const spec = await loadSpec(file, ports);
        if (!opts.quiet) process.stdout.write(`${displayPath(spec.file, ports.cwd)}: ${formatSummary(specSummary(spec))} — valid\n`);
      } catch (e) {
        if (!(e instanceof SpecError)) throw e;
        process.stderr.write(formatProblems(e.problems));
        const n = e.problems.length;
        process.stderr.write(`${file}: ${n} problem${n === 1 ? '' : 's'}\n`);
        process.exitCode = 1;
      }
    });
  program
    .command('schema')
    .description('print the JSON Schema of images.yaml')
    .action(() => {
      process.stdout.write(readFileSync(schemaPath(), 'utf8'));
    });
}
