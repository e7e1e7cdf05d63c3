/**
 * What command actions share: opening the store named by `--root` / `$DIMG_ROOT`, and whether
 * output goes to a terminal.
 */
import type { Command } from 'commander';
import { Store, defaultStoreRoot } from '../store/store.js';
import { storeOptions } from '../store/defaults.js';

/** The store root chosen by the global `--root` option, else $DIMG_ROOT, else the XDG default. */
export function storeRootOf(cmd: Command): string {
  let c: Command | null = cmd;
  while (c) {
    const root = c.opts().root as string | undefined;
    if (root) return root;
    c = c.parent;
  }
  return defaultStoreRoot();
}

/** Opens the store for a command (with the real layer unpacker wired in). */
export function openStoreFor(cmd: Command): Promise<Store> {
  return Store.open(storeRootOf(cmd), { ...storeOptions(), warn: (m) => process.stderr.write(`Warning: ${m}\n`) });
}

/** True when stdout is an interactive terminal. */
export function stdoutIsTty(): boolean {
  return Boolean(process.stdout.isTTY);
}
