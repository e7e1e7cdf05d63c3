/**
 * Independent checks of what a registry holds, straight over HTTP (not through dimg's client): every
 * tag of every repository resolves to a manifest (or index) whose config, layers and child manifests
 * all exist. Used after faults, kills and concurrent applies: a registry must never hold a manifest
 * whose blobs are missing.
 */
import { createHash } from 'node:crypto';

const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** A registry's tags: repository → tag → manifest digest. */
export type RegistryState = Record<string, Record<string, string>>;

/** What the check found. */
export interface RegistryCheck {
  state: RegistryState;
  manifests: number;
  blobs: number;
  /** Each dangling reference, naming the manifest and the missing blob. Must be empty. */
  problems: string[];
}

async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any; raw: Buffer; digest?: string }> {
  const r = await fetch(url, { headers });
  const raw = Buffer.from(await r.arrayBuffer());
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    body = undefined;
  }
  return { status: r.status, body, raw, digest: r.headers.get('docker-content-digest') ?? undefined };
}

/** Every item of a paginated list (Link: <next>; rel="next"); throws unless each page answers 200. */
async function paged(baseUrl: string, first: string, field: string): Promise<string[]> {
  const out: string[] = [];
  let next: string | undefined = first;
  while (next) {
    const r = await fetch(new URL(next, baseUrl));
    const body = (await r.json().catch(() => undefined)) as Record<string, unknown> | undefined;
    if (r.status === 404 && field === 'tags') return out; // a repository whose tags were all deleted
    if (r.status !== 200) throw new Error(`registry check: GET ${next} answered ${r.status}: ${JSON.stringify(body)}`);
    out.push(...((body?.[field] as string[] | null) ?? []));
    next = /<([^>]+)>;\s*rel="?next"?/.exec(r.headers.get('link') ?? '')?.[1];
  }
  return out;
}

/**
 * Walks the whole registry at `baseUrl` (`http://127.0.0.1:PORT`, no auth). With `content`, every
 * referenced blob is also downloaded and hashed (a half-uploaded blob recorded as present shows up).
 */
export async function checkRegistry(baseUrl: string, opts: { content?: boolean } = {}): Promise<RegistryCheck> {
  const out: RegistryCheck = { state: {}, manifests: 0, blobs: 0, problems: [] };
  const repos = await paged(baseUrl, '/v2/_catalog?n=1000', 'repositories');
  const blobSeen = new Map<string, boolean>();
  const headBlob = async (repo: string, digest: string): Promise<boolean> => {
    const key = `${repo}@${digest}`;
    if (!blobSeen.has(key)) {
      const r = await fetch(`${baseUrl}/v2/${repo}/blobs/${digest}`, { method: opts.content ? 'GET' : 'HEAD' });
      let ok = r.status === 200;
      if (opts.content && ok) {
        const h = createHash('sha256');
        for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) h.update(c);
        const actual = `sha256:${h.digest('hex')}`;
        if (actual !== digest) {
          out.problems.push(`${repo}: blob ${digest} has content hashing to ${actual}`);
          ok = false;
        }
      } else {
        await r.body?.cancel();
      }
      blobSeen.set(key, ok);
      out.blobs++;
    }
    return blobSeen.get(key)!;
  };
  const walk = async (repo: string, ref: string, where: string, depth = 0): Promise<string | undefined> => {
    const m = await getJson(`${baseUrl}/v2/${repo}/manifests/${ref}`, { accept: ACCEPT });
    if (m.status !== 200) {
      out.problems.push(`${where}: manifest ${ref} answers ${m.status}`);
      return undefined;
    }
    out.manifests++;
    const digest = `sha256:${createHash('sha256').update(m.raw).digest('hex')}`;
    if (m.digest && m.digest !== digest) out.problems.push(`${where}: manifest bytes hash to ${digest}, registry says ${m.digest}`);
    if (Array.isArray(m.body?.manifests)) {
      if (depth > 3) return digest;
      for (const child of m.body.manifests) await walk(repo, child.digest, `${where} → ${child.digest}`, depth + 1);
    } else {
      for (const d of [m.body?.config, ...(m.body?.layers ?? [])]) {
        if (!d?.digest) {
          out.problems.push(`${where}: manifest ${digest} has a descriptor without digest`);
          continue;
        }
        if (d.urls?.length) continue;
        if (!(await headBlob(repo, d.digest))) out.problems.push(`${where}: manifest ${digest} references blob ${d.digest}, which the registry does not have`);
      }
    }
    return digest;
  };
  for (const repo of repos) {
    const list = await paged(baseUrl, `/v2/${repo}/tags/list?n=1000`, 'tags');
    out.state[repo] = {};
    for (const tag of list) {
      const d = await walk(repo, tag, `${repo}:${tag}`);
      if (d) out.state[repo]![tag] = d;
    }
  }
  return out;
}
