/**
 * `dimg store verify [--repair]`: checks every blob, image closure, layer record, cache entry and
 * overlay layer dir of the local store; exits 1 while problems remain.
 */
import type { Command } from 'commander';
import { verifyStore } from '../../store/verify.js';
import { openStoreFor } from '../context.js';

/** Registers the `store` command group. */
export function register(program: Command): void {
  const store = program.commands.find((c) => c.name() === 'store') ?? program.command('store').description('inspect and maintain the local store');
  store
    .command('verify')
    .description('check that every blob hashes to its name and every image is complete')
    .option('--repair', 'remove corrupt blobs, unreadable records and names pointing at broken images')
    .action(async (opts: { repair?: boolean }, c: Command) => {
      const s = await openStoreFor(c);
      const report = await verifyStore(s, { repair: opts.repair });
      for (const p of report.problems) process.stdout.write(`${p.repaired ? 'repaired' : 'problem'}: ${p.message}${p.repaired ? ` (${p.repaired})` : ''}\n`);
      const left = report.problems.filter((p) => !p.repaired).length;
      process.stdout.write(
        `checked ${report.blobs} blobs, ${report.images} images, ${report.layerDirs} layer dirs, ${report.cacheEntries} cache entries: ` +
          (report.problems.length === 0 ? 'store OK\n' : left > 0 ? `${left} problem(s) found; run \`dimg store verify --repair\`\n` : `${report.problems.length} problem(s) repaired\n`),
      );
      if (left > 0) process.exitCode = 1;
    });
}
