/**
 * Host programs the RUN sandbox relies on (util-linux, coreutils, iproute2), found once on PATH and
 * the usual sbin dirs so the sandbox never depends on the caller's PATH order.
 */
import { accessSync, constants as FS } from 'node:fs';
import { join } from 'node:path';

const found = new Map<string, string | undefined>();

/** Absolute path of `name`, or undefined when it is not installed. */
export function hostTool(name: string): string | undefined {
  if (found.has(name)) return found.get(name);
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  let hit: string | undefined;
  for (const d of dirs) {
    if (!d) continue;
    try {
      accessSync(join(d, name), FS.X_OK);
      hit = join(d, name);
      break;
    } catch {
      /* not here */
    }
  }
  found.set(name, hit);
  return hit;
}
