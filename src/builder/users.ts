/**
 * Resolving an image's `User` (`name`, `uid`, `name:group`, `uid:gid`) to numeric ids through the
 * image's own /etc/passwd and /etc/group, as Docker does for RUN steps.
 */
import { DimgError } from '../errors.js';

/** Numeric identity a RUN step runs as, with the home directory used when HOME is not set. */
export interface RunIdentity {
  uid: number;
  gid: number;
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function parsePasswd(text: string | undefined): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || line.startsWith('#')) continue;
    out.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5] || '/' });
  }
  return out;
}

function parseGroup(text: string | undefined): { name: string; gid: number }[] {
  const out: { name: string; gid: number }[] = [];
  for (const line of (text ?? '').split('\n')) {
    const f = line.split(':');
    if (f.length < 3 || line.startsWith('#')) continue;
    out.push({ name: f[0]!, gid: Number(f[2]) });
  }
  return out;
}

const NUMERIC = /^\d+$/;

/**
 * Resolves `user` (empty = root) with the image's passwd/group file contents. A numeric uid that is
 * not in passwd runs with gid 0 (or the given gid) and home `/`, like Docker. Unknown names fail with
 * USER_NOT_FOUND naming `subject` (the image and step).
 */
export function resolveUser(user: string | undefined, passwd: string | undefined, group: string | undefined, subject: string): RunIdentity {
  const spec = (user ?? '').trim();
  if (spec === '') return { uid: 0, gid: 0, home: '/root' };
  const [u, g] = spec.split(':', 2) as [string, string | undefined];
  const users = parsePasswd(passwd);
  let ident: RunIdentity;
  if (NUMERIC.test(u)) {
    const found = users.find((p) => p.uid === Number(u));
    ident = { uid: Number(u), gid: found?.gid ?? 0, home: found?.home ?? '/' };
  } else {
    const found = users.find((p) => p.name === u);
    if (!found) {
      throw new DimgError('USER_NOT_FOUND', `${subject}: user "${u}" is not in the image's /etc/passwd`, 'create the user in an earlier step, or give a numeric uid[:gid]');
    }
    ident = { uid: found.uid, gid: found.gid, home: found.home };
  }
  if (g !== undefined && g !== '') {
    if (NUMERIC.test(g)) ident.gid = Number(g);
    else {
      const found = parseGroup(group).find((x) => x.name === g);
      if (!found) {
        throw new DimgError('GROUP_NOT_FOUND', `${subject}: group "${g}" is not in the image's /etc/group`, 'create the group in an earlier step, or give a numeric gid');
      }
      ident.gid = found.gid;
    }
  }
  return ident;
}
