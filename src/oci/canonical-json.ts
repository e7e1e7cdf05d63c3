/**
 * Canonical JSON for everything dimg writes: keys sorted by code unit, no insignificant whitespace,
 * `undefined` members dropped. The same value always gives the same bytes, so the same digest.
 */

/** Serialises `value` canonically. Throws on values JSON cannot express (NaN, functions, cycles). */
export function canonicalJson(value: unknown): string {
  return write(value, new Set());
}

/** Canonical JSON as UTF-8 bytes, ready to hash and store. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}

function write(value: unknown, seen: Set<object>): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonical JSON cannot encode ${value}`);
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new TypeError(`canonical JSON cannot encode a ${typeof value}`);
  }
  const obj = value as object;
  if (seen.has(obj)) throw new TypeError('canonical JSON cannot encode a cycle');
  seen.add(obj);
  let out: string;
  if (Array.isArray(obj)) {
    out = `[${obj.map((v) => (v === undefined ? 'null' : write(v, seen))).join(',')}]`;
  } else {
    const keys = Object.keys(obj)
      .filter((k) => (obj as Record<string, unknown>)[k] !== undefined)
      .sort();
    out = `{${keys.map((k) => `${JSON.stringify(k)}:${write((obj as Record<string, unknown>)[k], seen)}`).join(',')}}`;
  }
  seen.delete(obj);
  return out;
}
