/**
 * Who may enter the store: its owner only. Unpacked layers must be exact copies of their images, so
 * the overlay layer dirs, copy-driver roots and extracted trees keep setuid-root files and device
 * nodes; anyone who could reach one could run it as root. The store root is therefore 0700 and every
 * directory dimg makes inside it 0700 too (defence in depth), set explicitly so the umask never
 * loosens it. A store made before this rule (0755) is tightened the next time it is opened.
 */
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { DimgError } from '../errors.js';

/** Mode of the store root and of the directories dimg makes in it. */
export const PRIVATE_DIR_MODE = 0o700;

/** Mode of missing parents of a new store root: nobody else may write (and so swap) them. */
const PARENT_DIR_MODE = 0o755;

/**
 * Creates `dir` (and missing parents inside the store) with mode 0700 whatever the umask; an existing
 * directory with group or world access is tightened to 0700.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  await tighten(dir);
}

/**
 * Makes `root` a store root only its owner can enter and returns a warning when an existing
 * directory had to be tightened (the user may have shared it on purpose and should know).
 *
 * - A missing root is created 0700, its missing parents 0755, whatever the umask.
 * - An existing root (a store made by an older dimg, or a directory the user pointed DIMG_ROOT or
 *   --root at) with group or world access is changed to 0700.
 * - A root owned by another user is refused with STORE_UNSAFE: its owner could replace what dimg
 *   reads and writes (e.g. swap a directory for a symlink while dimg works as root).
 * - Every directory directly under the root (oci/, overlay/, tmp/, … including ones an older dimg
 *   made) is tightened to 0700 as well.
 */
export async function prepareStoreRoot(root: string): Promise<string | undefined> {
  await fs.mkdir(dirname(root), { recursive: true, mode: PARENT_DIR_MODE });
  let created = true;
  try {
    await fs.mkdir(root, { mode: PRIVATE_DIR_MODE });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    created = false;
  }
  const st = await fs.stat(root);
  if (!st.isDirectory()) {
    throw new DimgError('STORE_UNUSABLE', `the dimg store root ${root} is not a directory`, 'set DIMG_ROOT (or --root) to a directory');
  }
  const me = process.geteuid?.();
  if (me !== undefined && st.uid !== me) {
    throw new DimgError(
      'STORE_UNSAFE',
      `the dimg store root ${root} belongs to uid ${st.uid}, not to you (uid ${me}): its owner could change what dimg reads and writes`,
      `use a store root you own: set DIMG_ROOT (or --root) to another directory, or \`chown ${me} ${root}\` if it is really yours`,
    );
  }
  const was = await tighten(root);
  for (const entry of await fs.readdir(root, { withFileTypes: true })) {
    if (entry.isDirectory()) await tighten(join(root, entry.name));
  }
  if (was === undefined || created) return undefined;
  return `tightened the permissions of the dimg store root ${root} from ${octal(was)} to ${octal(PRIVATE_DIR_MODE)}: unpacked layers in it keep setuid files, so only its owner may enter it`;
}

/** chmods `dir` to 0700 when group or others have any access; returns the old mode if it changed. */
async function tighten(dir: string): Promise<number | undefined> {
  const st = await fs.lstat(dir);
  if (!st.isDirectory() || (st.mode & 0o077) === 0) return undefined;
  await fs.chmod(dir, PRIVATE_DIR_MODE);
  return st.mode & 0o7777;
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}
