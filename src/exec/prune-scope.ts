/**
 * Where prune looks for tags this project left behind: every repository of every registry of the
 * spec, not only those the spec still declares.
 */
import type { Spec } from '../specfile/model.js';
import type { RegistryClient } from '../registry/client.js';
import { targetReference } from '../plan/types.js';
import type { ResolvedSpec } from '../resolve/desired.js';

/**
 * The repositories prune looks at, per registry of the spec (pushed to or not): every repository under
 * the registry's path prefix (from the catalog), so tags of images removed from the spec are found too.
 * A registry without a catalog falls back to the repositories the spec still declares, with a warning
 * where the spec pushes to it.
 */
export async function repositoriesToPrune(spec: Spec, client: RegistryClient, resolved: ResolvedSpec, warn?: (m: string) => void): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const used = new Set(resolved.desired.images.flatMap((i) => i.targets.map((t) => t.registry)));
  // Every registry of the spec, also one no image pushes to any more: removing a project's last
  // image from a registry must still prune the tags it left there.
  for (const r of Object.values(spec.registries)) {
    const declared = resolved.desired.images.flatMap((i) =>
      i.targets.filter((t) => t.registry === r.name).map((t) => targetReference(t).repository),
    );
    let repos: string[];
    try {
      const prefix = r.prefix ? `${r.prefix.replace(/\/+$/, '')}/` : '';
      repos = (await client.catalog(r.host)).filter((name) => name.startsWith(prefix)).map((name) => `${r.host}/${name}`);
    } catch (e) {
      // Only worth a warning where the spec still pushes; elsewhere there is nothing declared to fall back on.
      if (used.has(r.name)) warn?.(`registry ${r.name}: cannot list its repositories (${(e as Error).message}); prune looks only at repositories the spec declares`);
      repos = [];
    }
    out.set(r.name, [...new Set([...declared, ...repos])].sort());
  }
  return out;
}
