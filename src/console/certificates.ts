/**
 * The threshold CA's issued certificates by the key they certify: issued.json (src/pki/ca/store.ts)
 * is read again only when it changes, each certificate's public key compressed to match the key
 * registry's. A cluster without a CA has none; an unreadable database is reported, not thrown.
 */
import { statSync } from 'node:fs';
import { p256 } from '@noble/curves/nist.js';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { readIssued, type CaPaths } from '../pki/ca/store.js';

export interface KeyCertificate {
  serial: string;
  subject: string;
  notBefore: string;
  notAfter: string;
  /** When and why it was revoked; undefined while valid. */
  revoked: { at: string; reason: string } | undefined;
}

export interface IssuedByKey {
  /** Compressed public key (hex) → its certificates, newest first. */
  byKey: Map<string, KeyCertificate[]>;
  problem: string | undefined;
}

function publicKeyOf(derBase64: string): string | undefined {
  try {
    const spki = AsnConvert.parse(Buffer.from(derBase64, 'base64'), Certificate).tbsCertificate.subjectPublicKeyInfo;
    return Buffer.from(p256.Point.fromBytes(new Uint8Array(spki.subjectPublicKey)).toBytes(true)).toString('hex');
  } catch {
    return undefined; // not a P-256 key: no quorumkey key it could belong to
  }
}

export class IssuedCertificates {
  private cached: IssuedByKey = { byKey: new Map(), problem: undefined };
  private stamp = '';

  constructor(private readonly paths: CaPaths) {}

  current(): IssuedByKey {
    let stamp: string;
    try {
      const st = statSync(this.paths.issued);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { byKey: new Map(), problem: undefined };
      return { byKey: new Map(), problem: `cannot read the issued-certificate database: ${(e as NodeJS.ErrnoException).code}` };
    }
    if (stamp === this.stamp) return this.cached;
    try {
      const byKey = new Map<string, KeyCertificate[]>();
      for (const c of readIssued(this.paths).certificates) {
        const key = publicKeyOf(c.der);
        if (key === undefined) continue;
        const row = { serial: c.serial, subject: c.subject, notBefore: c.notBefore, notAfter: c.notAfter, revoked: c.revoked ? { at: c.revoked.at, reason: c.revoked.reason } : undefined };
        byKey.set(key, [row, ...(byKey.get(key) ?? [])]);
      }
      this.cached = { byKey, problem: undefined };
    } catch (e) {
      this.cached = { byKey: new Map(), problem: (e as Error).message };
    }
    this.stamp = stamp;
    return this.cached;
  }
}
