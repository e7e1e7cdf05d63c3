/**
 * The image graph: which images an image needs first (its base, `copy --from` sources, Dockerfile
 * stages), a stable dependency order (bases first, otherwise file order), and cycles, reported as
 * the path that closes them (`a -> b -> a`).
 */

/** A node: its key and the keys it depends on (unknown keys are ignored here; the loader reports them). */
export interface GraphNode {
  readonly key: string;
  readonly deps: readonly string[];
}

/** The order and any cycles found (each cycle lists keys, first repeated at the end). */
export interface GraphOrder {
  readonly order: readonly string[];
  readonly cycles: readonly (readonly string[])[];
}

/**
 * Orders nodes so every node comes after its dependencies, keeping input order where free.
 * Nodes on or behind a cycle are left out of `order`; each distinct cycle is reported once.
 */
export function orderGraph(nodes: readonly GraphNode[]): GraphOrder {
  const byKey = new Map(nodes.map((n) => [n.key, n]));
  const state = new Map<string, 'visiting' | 'done' | 'broken'>();
  const order: string[] = [];
  const cycles: string[][] = [];
  const seenCycles = new Set<string>();
  const stack: string[] = [];

  const visit = (key: string): boolean => {
    const s = state.get(key);
    if (s === 'done') return true;
    if (s === 'broken') return false;
    if (s === 'visiting') {
      const cycle = [...stack.slice(stack.indexOf(key)), key];
      const id = [...new Set(cycle)].sort().join('\0');
      if (!seenCycles.has(id)) {
        seenCycles.add(id);
        cycles.push(cycle);
      }
      return false;
    }
    state.set(key, 'visiting');
    stack.push(key);
    let ok = true;
    for (const d of byKey.get(key)!.deps) if (byKey.has(d) && !visit(d)) ok = false;
    stack.pop();
    state.set(key, ok ? 'done' : 'broken');
    if (ok) order.push(key);
    return ok;
  };
  for (const n of nodes) visit(n.key);
  return { order, cycles };
}
