/**
 * Canonical JSON used for audit-log hashing.
 *
 * - Only plain JSON values: null, booleans, finite numbers, strings, arrays without holes and
 *   plain objects (prototype Object.prototype or null). Anything else (undefined, functions,
 *   bigint, symbols, NaN/±Infinity, Date, Buffer, Map, class instances, cycles) is rejected:
 *   the caller converts (hex for bytes, ISO strings for dates, decimal strings for big integers).
 * - Object keys sorted by UTF-16 code units (the order of RFC 8785 / JCS), no whitespace.
 * - Strings and numbers serialised as ECMAScript JSON.stringify does (the same as JCS: shortest
 *   round-trip number form, -0 as 0, lone surrogates escaped as \uXXXX so the text is valid UTF-8).
 *
 * The encoding is a pure function of the parsed value, so canonical(JSON.parse(canonical(x))) is
 * canonical(x): a verifier recomputes it from what it reads back.
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export const MAX_JSON_DEPTH = 64;

export class CanonicalJsonError extends TypeError {
  constructor(path: string, what: string) {
    super(`not plain JSON at ${path}: ${what}`);
    this.name = 'CanonicalJsonError';
  }
}

export function canonicalJson(value: unknown): string {
  const seen = new Set<object>();
  const parts: string[] = [];

  const walk = (v: unknown, path: string, depth: number): void => {
    if (depth > MAX_JSON_DEPTH) throw new CanonicalJsonError(path, `nested deeper than ${MAX_JSON_DEPTH}`);
    if (v === null) {
      parts.push('null');
      return;
    }
    switch (typeof v) {
      case 'boolean':
        parts.push(v ? 'true' : 'false');
        return;
      case 'number':
        if (!Number.isFinite(v)) throw new CanonicalJsonError(path, `non-finite number ${v}`);
        parts.push(JSON.stringify(v));
        return;
      case 'string':
        parts.push(JSON.stringify(v));
        return;
      case 'object':
        break;
      default:
        throw new CanonicalJsonError(path, typeof v);
    }
    const obj = v as object;
    if (seen.has(obj)) throw new CanonicalJsonError(path, 'cycle');
    seen.add(obj);
    if (Array.isArray(obj)) {
      parts.push('[');
      for (let i = 0; i < obj.length; i++) {
        if (!(i in obj)) throw new CanonicalJsonError(`${path}[${i}]`, 'hole in array');
        if (i > 0) parts.push(',');
        walk(obj[i], `${path}[${i}]`, depth + 1);
      }
      parts.push(']');
    } else {
      const proto = Object.getPrototypeOf(obj);
      if (proto !== Object.prototype && proto !== null) {
        throw new CanonicalJsonError(path, `instance of ${(obj as { constructor?: { name?: string } }).constructor?.name ?? 'a class'}`);
      }
      if (Object.getOwnPropertySymbols(obj).length > 0) throw new CanonicalJsonError(path, 'symbol keys');
      const keys = Object.keys(obj).sort();
      parts.push('{');
      keys.forEach((k, i) => {
        if (i > 0) parts.push(',');
        parts.push(JSON.stringify(k), ':');
        walk((obj as Record<string, unknown>)[k], `${path}.${k}`, depth + 1);
      });
      parts.push('}');
    }
    seen.delete(obj);
  };

  walk(value, '$', 0);
  return parts.join('');
}
