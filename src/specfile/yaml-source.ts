/**
 * YAML with positions: parses a spec file keeping every node's source range, turns YAML syntax
 * errors (including duplicate keys) into located problems, and finds the node a JSON path names,
 * so schema and semantic errors point at the exact line and column.
 */
import { parseDocument, isMap, isSeq, isScalar, isAlias, isPair, LineCounter, type Document, type Node, type Scalar } from 'yaml';
import type { Problem } from './problems.js';
import { SourceText } from './source-text.js';

export { SourceText };

/** A path into the parsed value: map keys and sequence indexes. */
export type JsonPath = readonly (string | number)[];

/** A parsed YAML spec: the plain value, the document (for positions) and syntax problems. */
export interface ParsedYaml {
  readonly source: SourceText;
  readonly doc: Document.Parsed;
  /** The plain JS value (undefined when the document is empty). */
  readonly value: unknown;
  readonly problems: Problem[];
}

/** Parses YAML text; duplicate keys and syntax errors become problems (never thrown). */
export function parseYaml(display: string, text: string): ParsedYaml {
  const source = new SourceText(display, text);
  const lineCounter = new LineCounter();
  // The library's own duplicate-key check compares every key of a map with every other (quadratic:
  // three quarters of the parse time of a 200-image spec); duplicateKeys() does it with a set.
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false, strict: true });
  const problems: Problem[] = [];
  for (const e of doc.errors) {
    problems.push(source.problem(e.pos, yamlMessage(e.message)));
  }
  for (const key of duplicateKeys(doc)) {
    problems.push(source.problem([key.range![0], key.range![1]], `duplicate key "${String(key.value)}"`));
  }
  let value: unknown;
  if (problems.length === 0) {
    try {
      value = doc.toJS({ maxAliasCount: 1000 });
    } catch (e) {
      // yaml throws (not reports) when aliases expand past maxAliasCount (a "billion laughs" bomb)
      // or an alias cannot be resolved: a problem of the file, not a crash.
      problems.push(source.problem([0, 1], `the YAML cannot be expanded: ${(e as Error).message}`));
    }
  }
  return { source, doc, value, problems };
}

/**
 * Every scalar map key that repeats an earlier key of the same map (by value, as YAML compares
 * them: `1` and `"1"` differ), in document order. Merge keys (`<<`) may repeat.
 */
function duplicateKeys(doc: Document.Parsed): Scalar[] {
  const found: Scalar[] = [];
  const visit = (node: unknown): void => {
    if (isMap(node)) {
      const seen = new Set<unknown>();
      for (const pair of node.items) {
        const k = pair.key as Node | null;
        if (isScalar(k) && k.range && k.value !== '<<') {
          if (seen.has(k.value)) found.push(k);
          else seen.add(k.value);
        }
        visit(pair.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) visit(item);
    }
  };
  visit(doc.contents);
  return found;
}

function yamlMessage(message: string): string {
  // The library's messages end with position details we render ourselves.
  return `YAML syntax error: ${message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`;
}

/** What a path resolves to: the value node and, for map members, the key node. */
export interface NodeAt {
  readonly node?: Node;
  readonly key?: Node;
  /** How much of the path resolved (the deepest existing node when shorter than the path). */
  readonly depth: number;
}

/** Finds the node at `path` (following aliases); stops at the deepest existing ancestor. */
export function nodeAt(doc: Document.Parsed, path: JsonPath): NodeAt {
  let node: unknown = doc.contents;
  let key: Node | undefined;
  let depth = 0;
  for (const seg of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      key = pair.key as Node;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
      key = undefined;
      node = node.items[seg];
    } else {
      break;
    }
    depth++;
  }
  if (isAlias(node)) node = node.resolve(doc);
  return { node: (node ?? undefined) as Node | undefined, key, depth };
}

/** Range of a node (start, end) when it has one. */
export function rangeOf(node: Node | undefined): [number, number] | undefined {
  const r = node?.range;
  return r ? [r[0], r[1]] : undefined;
}

/**
 * The best range for a message about `path`: the value for scalars, the key for collections (a
 * map's first line is its key), the deepest existing ancestor when the path does not exist.
 */
export function rangeForPath(doc: Document.Parsed, path: JsonPath, prefer: 'key' | 'value' | 'auto' = 'auto'): [number, number] | undefined {
  const at = nodeAt(doc, path);
  const collection = isMap(at.node) || isSeq(at.node);
  if (at.key && (prefer === 'key' || (prefer === 'auto' && (collection || at.depth < path.length)))) return rangeOf(at.key);
  return rangeOf(at.node) ?? rangeOf(at.key);
}

/** The key node of member `name` of the map at `path` (for "unknown key" messages). */
export function keyRange(doc: Document.Parsed, path: JsonPath, name: string): [number, number] | undefined {
  const at = nodeAt(doc, [...path, name]);
  if (at.depth === path.length + 1 && at.key) return rangeOf(at.key);
  return rangeForPath(doc, path);
}

/** Renders a JSON path as people read it: `images.web.steps[1].chown`. */
export function pathString(path: JsonPath): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else s += s === '' ? seg : `.${seg}`;
  }
  return s === '' ? '(top level)' : s;
}
