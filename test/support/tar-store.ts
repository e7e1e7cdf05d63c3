/** A store for sandbox tests whose layer unpacker is GNU tar, so they test the sandbox, not the layer module. */
import { spawn } from 'node:child_process';
import { Store } from '../../src/store/store.js';

/** Opens (creating) the store at `root` with GNU tar as its unpacker. */
export async function storeWithTarUnpack(root: string): Promise<Store> {
  return Store.open(root, {
    unpack: (tar, dir) =>
      new Promise((resolve, reject) => {
        const child = spawn('tar', ['-x', '-C', dir, '--same-owner', '-p'], { stdio: ['pipe', 'ignore', 'inherit'] });
        tar.pipe(child.stdin);
        child.on('close', (c) => (c === 0 ? resolve() : reject(new Error(`tar exited ${c}`))));
      }),
  });
}
