/**
 * The two sides of `dimg image copy`: a registry (`docker://REF` or a plain reference), an OCI layout
 * directory (`oci:DIR[:TAG]`) or a Docker archive (`docker-archive:FILE[:NAME:TAG]`). These are names
 * only; copy.ts opens each as an image endpoint (src/endpoint). Kept apart from copy.ts so that the CLI
 * checks both names before it loads the endpoint code.
 */
import { DimgError } from '../errors.js';
import { formatReference, parseReference, isValidTag, type Reference } from '../oci/reference.js';

/** One side of a copy. */
export type Endpoint =
  | { kind: 'registry'; ref: Reference }
  | { kind: 'oci'; dir: string; tag?: string }
  | { kind: 'docker-archive'; file: string; name?: string };

/**
 * Parses `oci:DIR[:TAG]`, `docker-archive:FILE[:NAME[:TAG]]`, `docker://REF` or `REF`. For a registry
 * source a missing tag means `latest`; a registry destination may omit it (the source's tag is used).
 */
export function parseEndpoint(s: string, role: 'source' | 'destination'): Endpoint {
  if (s.startsWith('oci:')) {
    const rest = s.slice(4);
    const i = rest.lastIndexOf(':');
    const tag = i > 0 ? rest.slice(i + 1) : '';
    if (i > 0 && !tag.includes('/') && isValidTag(tag)) return { kind: 'oci', dir: rest.slice(0, i), tag };
    if (!rest) throw new DimgError('REFERENCE_INVALID', `${role} ${s}: no directory given`, 'write oci:DIR[:TAG]');
    return { kind: 'oci', dir: rest };
  }
  if (s.startsWith('docker-archive:')) {
    const rest = s.slice('docker-archive:'.length);
    const i = rest.indexOf(':');
    const file = i >= 0 ? rest.slice(0, i) : rest;
    if (!file) throw new DimgError('REFERENCE_INVALID', `${role} ${s}: no file given`, 'write docker-archive:FILE[:NAME:TAG]');
    const name = i >= 0 && rest.slice(i + 1) ? formatReference(parseReference(rest.slice(i + 1))) : undefined;
    return { kind: 'docker-archive', file, name };
  }
  const ref = s.startsWith('docker://') ? s.slice('docker://'.length) : s;
  return { kind: 'registry', ref: parseReference(ref, { defaultTag: role === 'source' }) };
}

