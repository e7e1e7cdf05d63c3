/**
 * skopeo as the independent witness of what is in a registry (plain-HTTP test registries, so TLS
 * verification is off). Fails with the package to install when skopeo is missing.
 */
import { requireTool, run } from './tools.js';

function skopeoInspect(args: string[]): string {
  return run(requireTool('skopeo', 'skopeo'), ['inspect', '--tls-verify=false', ...args]);
}

/** The manifest digest skopeo reads for `ref` (`host/repo:tag`). */
export function remoteDigest(ref: string): string {
  return (JSON.parse(skopeoInspect([`docker://${ref}`])) as { Digest: string }).Digest;
}

/** The manifest of `ref` exactly as the registry serves it, parsed. */
export function remoteManifest<T = unknown>(ref: string): T {
  return JSON.parse(skopeoInspect(['--raw', `docker://${ref}`])) as T;
}
