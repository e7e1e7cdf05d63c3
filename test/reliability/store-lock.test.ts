/**
 * The store lock under contention (issue #14, part 1): tags named at once by many async tasks of one
 * process and by two processes must all survive. A lock that is re-entrant by path alone lets two
 * tasks of one process read-modify-write index.json together, and the first to finish removes the
 * lock file while the second is still inside.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { sha256 } from '../../src/oci/digest.js';
import { withFileLock } from '../../src/store/lock.js';
import { tempDir } from '../support/tmp.js';
import { REPO_ROOT } from '../support/cli.js';

const descriptor = (i: number) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(Buffer.from(`image ${i}`)), size: 100 + i });

test('50 tags named concurrently in one process are all in the index', async (t) => {
  const store = await Store.open(join(tempDir(t), 'store'));
  for (let round = 0; round < 5; round++) {
    const names = Array.from({ length: 50 }, (_, i) => `example.test/app${i}:r${round}`);
    // Staggered starts: some tasks arrive while another already holds the lock.
    await Promise.all(names.map((n, i) => new Promise((r) => setTimeout(r, i % 7)).then(() => store.tag(n, descriptor(i)))));
    const present = new Set((await store.entries()).map((e) => e.name));
    const lost = names.filter((n) => !present.has(n));
    assert.deepEqual(lost, [], `round ${round}: tags lost`);
  }
});

test('the lock is exclusive between async tasks of one process, and re-entrant only within one task', async (t) => {
  const path = join(tempDir(t), 'lock');
  let inside = 0;
  let most = 0;
  const body = async () => {
    inside++;
    most = Math.max(most, inside);
    await new Promise((r) => setTimeout(r, 10));
    // A nested call from the same task must not wait for itself.
    await withFileLock(path, async () => undefined);
    inside--;
  };
  let entered!: () => void;
  const firstInside = new Promise<void>((r) => (entered = r));
  const first = withFileLock(path, async () => {
    entered();
    await body();
  });
  // These tasks start while the first one holds the lock, from outside of it.
  await firstInside;
  await Promise.all([first, ...Array.from({ length: 10 }, () => withFileLock(path, body))]);
  assert.equal(most, 1, 'two tasks were inside the lock at once');
});

test('two processes naming 50 tags each at once lose none', async (t) => {
  const root = join(tempDir(t), 'store');
  await Store.open(root);
  const script = (who: string) => `
    import { Store } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'src', 'store', 'store.js'))};
    import { sha256 } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'src', 'oci', 'digest.js'))};
    const store = await Store.open(${JSON.stringify(root)});
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.tag('example.test/${who}' + i + ':1', { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(Buffer.from('${who}' + i)), size: 1 })));
  `;
  const runProc = (who: string) =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script(who)], { stdio: ['ignore', 'inherit', 'inherit'] });
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`process ${who} exited ${code}`))));
    });
  await Promise.all([runProc('a'), runProc('b')]);
  const store = await Store.open(root);
  const present = new Set((await store.entries()).map((e) => e.name));
  const lost = ['a', 'b'].flatMap((w) => Array.from({ length: 50 }, (_, i) => `example.test/${w}${i}:1`)).filter((n) => !present.has(n));
  assert.deepEqual(lost, []);
});
