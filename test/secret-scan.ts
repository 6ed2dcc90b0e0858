/**
 * Looks for secret values where they must never appear (errors, logs, files), in every encoding a
 * leaked value usually takes: hex in either case, padded to its byte length or not, decimal,
 * base64 / base64url, and the raw bytes. A finding names the secret by its label and the
 * encoding, never by its value, so a failing test prints nothing secret.
 *
 * Text is scanned by runs: a secret's hex form can only occur inside a maximal run of hex
 * digits of the text (likewise decimal and base64), so only the few long runs of a text are
 * compared with the secrets — cheap enough for thousands of secrets and hundreds of errors.
 */
import { inspect } from 'node:util';

/** Values below 2^96 (and wiped, all-zero buffers) are not scanned: their forms occur by chance. */
const MIN_SIGNIFICANT_HEX = 24;
/** Every scanned form is at least this long (12 bytes give 16 base64 characters): the index key. */
const KEY = 16;

type Family = 'hex' | 'decimal' | 'base64';
/** Where each family can occur in a text: maximal runs of its alphabet. */
const RUN: Record<Family, RegExp> = { hex: /[0-9a-fA-F]{16,}/g, decimal: /[0-9]{16,}/g, base64: /[A-Za-z0-9+/_-]{16,}/g };

interface Form {
  label: string;
  encoding: string;
  text: string;
}

export class SecretScan {
  private readonly raw: { label: string; bytes: Buffer }[] = [];
  /** Per family, the forms by their first KEY characters (hex in lower case). */
  private readonly index: Record<Family, Map<string, Form[]>> = { hex: new Map(), decimal: new Map(), base64: new Map() };

  /** Adds a secret (a scalar, or bytes such as a seed or Δ); trivially small values are skipped. */
  add(label: string, value: bigint | Uint8Array): this {
    const bytes = typeof value === 'bigint' ? Buffer.from(value.toString(16).padStart(64, '0'), 'hex') : Buffer.from(value);
    const hex = bytes.toString('hex');
    const unpadded = hex.replace(/^0+/, '');
    if (unpadded.length < MIN_SIGNIFICANT_HEX) return this;
    this.raw.push({ label, bytes });
    const strip = (s: string) => s.replace(/=+$/, '');
    const forms: [Family, string, string][] = [
      ['hex', 'hex', hex],
      ['hex', 'unpadded hex', unpadded],
      ['decimal', 'decimal', BigInt(`0x${hex}`).toString(10)],
      ['base64', 'base64', strip(bytes.toString('base64'))],
      ['base64', 'base64url', strip(bytes.toString('base64url'))],
    ];
    for (const [family, encoding, text] of forms) {
      const key = text.slice(0, KEY);
      const list = this.index[family].get(key) ?? [];
      if (!list.some((f) => f.text === text)) list.push({ label, encoding, text });
      this.index[family].set(key, list);
    }
    return this;
  }

  get size(): number {
    return this.raw.length;
  }

  /** The labels of the secrets held (what was recorded, never a value). */
  get labels(): string[] {
    return this.raw.map((e) => e.label);
  }

  /** The first secret found in `text`, as "label (encoding)", or undefined. */
  inText(text: string): string | undefined {
    for (const family of ['hex', 'decimal', 'base64'] as const) {
      for (const [run] of text.matchAll(RUN[family])) {
        // Hex is matched case-insensitively (upper, lower and mixed case); base64 is not.
        const hay = family === 'hex' ? run.toLowerCase() : run;
        for (let at = 0; at + KEY <= hay.length; at++) {
          for (const form of this.index[family].get(hay.slice(at, at + KEY)) ?? []) {
            if (hay.startsWith(form.text, at)) return `${form.label} (${form.encoding}${run.startsWith(form.text, at) ? '' : ', upper case'})`;
          }
        }
      }
    }
    return undefined;
  }

  /** The first secret found in `data`: its raw bytes, or one of its text forms in the bytes read as text. */
  inBytes(data: Uint8Array): string | undefined {
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    for (const e of this.raw) if (buf.indexOf(e.bytes) !== -1) return `${e.label} (raw bytes)`;
    return this.inText(buf.toString('latin1'));
  }

  /**
   * The first secret found anywhere in an error: every own property (enumerable or not: message,
   * stack, reason, culprit, suspects, cause, …), recursively, and its util.inspect rendering.
   */
  inError(err: unknown): string | undefined {
    const texts: string[] = [inspect(err, { showHidden: true, depth: 8, maxArrayLength: null, maxStringLength: null })];
    const seen = new Set<unknown>();
    const walk = (value: unknown, depth: number): string | undefined => {
      if (value === null || value === undefined || depth > 8) return undefined;
      if (typeof value === 'string') return void texts.push(value);
      if (typeof value === 'number' || typeof value === 'bigint') return void texts.push(String(value));
      if (typeof value !== 'object' && typeof value !== 'function') return undefined;
      if (seen.has(value)) return undefined;
      seen.add(value);
      if (value instanceof Uint8Array) return this.inBytes(value);
      for (const key of Object.getOwnPropertyNames(value)) {
        const descriptor = Object.getOwnPropertyDescriptor(value, key);
        const found = descriptor && 'value' in descriptor ? walk(descriptor.value, depth + 1) : undefined;
        if (found) return found;
      }
      return undefined;
    };
    return walk(err, 0) ?? this.inText(texts.join('\n'));
  }
}
