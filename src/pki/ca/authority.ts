/**
 * The CA's operations on its state (store.ts), each signing through the threshold with the
 * injected signers: init (root + delegated OCSP responder certificate), issue from a CSR,
 * revoke, CRL. The signers enforce the CA key's policy on every TBSCertificate and TBSCertList.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, Name, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { issueWithEmbeddedScts, type SctLog } from '../../ct/precert-flow.js';
import { writeFileAtomic } from '../../storage/atomic-write.js';
import { buildTbsCertificate, derFrom, pem, randomSerial, signCertificate, type TbsSigner } from './certificate.js';
import { buildTbsCertList, signCrl } from './crl.js';
import { parseCsr } from './csr.js';
import { describeName, parseSubject } from './names.js';
import { profileExtensions, rootExtensions, type Profile } from './profiles.js';
import type { RevocationReason } from './reasons.js';
import { caInitialised, CaStateError, findIssued, readCaConfig, updateIssued, writeJson, type CaConfig, type CaPaths, type IssuedCertificate } from './store.js';

const DAY_MS = 86_400_000;
/** notBefore a little in the past: clocks of relying parties differ. */
const BACKDATE_MS = 5 * 60_000;
export const RESPONDER_SUBJECT = 'quorumkey OCSP responder';

export interface CaInit {
  config: Omit<CaConfig, 'version'>;
  subject: Name;
  rootDays: number;
  responderDays: number;
  caSpki: Uint8Array;
  responderSpki: Uint8Array;
  sign: TbsSigner;
}

function record(der: Uint8Array, profile: IssuedCertificate['profile']): IssuedCertificate {
  const cert = AsnConvert.parse(der, Certificate).tbsCertificate;
  return {
    serial: Buffer.from(cert.serialNumber).toString('hex'),
    subject: describeName(cert.subject),
    profile,
    notBefore: cert.validity.notBefore.getTime().toISOString(),
    notAfter: cert.validity.notAfter.getTime().toISOString(),
    issuedAt: new Date().toISOString(),
    der: Buffer.from(der).toString('base64'),
  };
}

const spki = (der: Uint8Array) => AsnConvert.parse(der, SubjectPublicKeyInfo);

function validity(days: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  // The whole span counts against the key's maxValidityDays: the backdating is part of it.
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now - BACKDATE_MS + days * DAY_MS) };
}

/** The root and its name and key, as issued. */
export function readRoot(p: CaPaths): { der: Uint8Array; subject: Name; spki: SubjectPublicKeyInfo } {
  const der = derFrom(readFileSync(p.rootCert), 'CERTIFICATE');
  const tbs = AsnConvert.parse(der, Certificate).tbsCertificate;
  return { der, subject: tbs.subject, spki: tbs.subjectPublicKeyInfo };
}

/** The CA's name with its CN replaced by RESPONDER_SUBJECT. */
function responderSubject(ca: Name): Name {
  return new Name([...ca.filter((rdn) => rdn.every((a) => a.type !== '2.5.4.3')), ...parseSubject(`/CN=${RESPONDER_SUBJECT}`)]);
}

export async function initCa(p: CaPaths, init: CaInit): Promise<{ root: Uint8Array; responder: Uint8Array }> {
  if (caInitialised(p)) throw new CaStateError(`a CA already exists at ${p.root} (${p.config})`);
  mkdirSync(p.root, { recursive: true, mode: 0o755 });
  const caKey = spki(init.caSpki);
  const root = await signCertificate(
    buildTbsCertificate({ serial: randomSerial(), issuer: init.subject, subject: init.subject, spki: caKey, ...validity(init.rootDays), extensions: rootExtensions(caKey) }),
    init.sign,
  );
  const responderKey = spki(init.responderSpki);
  const responder = await signCertificate(
    buildTbsCertificate({
      serial: randomSerial(),
      issuer: init.subject,
      subject: responderSubject(init.subject),
      spki: responderKey,
      ...validity(init.responderDays),
      extensions: profileExtensions('ocsp-responder', { subject: responderKey, issuer: caKey, sans: [], ...init.config }),
    }),
    init.sign,
  );
  await writeFileAtomic(p.rootCert, Buffer.from(pem('CERTIFICATE', root)), 0o644);
  await writeFileAtomic(p.responderCert, Buffer.from(pem('CERTIFICATE', responder)), 0o644);
  await writeJson(p.config, { version: 1, ...init.config } satisfies CaConfig);
  // Last: the responder reloads on this file, and a CA without it is not yet answering.
  await updateIssued(p, (db) => db.certificates.push(record(root, 'root'), record(responder, 'ocsp-responder')));
  return { root, responder };
}

/**
 * Issues a certificate for `csr`. With `logs`, RFC 6962 §3.1: a precertificate goes to each
 * log first, and the certificate carries their SCTs (each checked with its log's key).
 */
export async function issueCertificate(p: CaPaths, csr: Uint8Array, profile: Profile, days: number, sign: TbsSigner, logs: readonly SctLog[] = []): Promise<IssuedCertificate> {
  const config = readCaConfig(p);
  const request = parseCsr(csr);
  const root = readRoot(p);
  const tbs = buildTbsCertificate({
    serial: randomSerial(),
    issuer: root.subject,
    subject: request.subject,
    spki: request.spki,
    ...validity(days),
    extensions: profileExtensions(profile, { subject: request.spki, issuer: root.spki, sans: request.sans, ...config }),
  });
  const der = logs.length ? (await issueWithEmbeddedScts(tbs, { signCertificate: sign, issuerChain: [root.der], logs })).certificate : await signCertificate(tbs, sign);
  const issued = record(der, profile);
  await updateIssued(p, (db) => db.certificates.push(issued));
  return issued;
}

export async function revokeCertificate(p: CaPaths, serial: string, reason: RevocationReason): Promise<IssuedCertificate> {
  readCaConfig(p);
  return updateIssued(p, (db) => {
    const cert = findIssued(db, serial);
    if (!cert) throw new CaStateError(`no certificate with serial ${serial} was issued by this CA ('quorumkey cert list' shows them)`);
    if (cert.profile === 'root') throw new CaStateError(`serial ${serial} is the CA's own root; a root is withdrawn by removing it from the trust stores`);
    if (cert.revoked) throw new CaStateError(`serial ${serial} was already revoked at ${cert.revoked.at} (${cert.revoked.reason})`);
    cert.revoked = { at: new Date(Math.floor(Date.now() / 1000) * 1000).toISOString(), reason };
    return cert;
  });
}

/** Signs a CRL of every revocation and writes crl.der / crl.pem (the CRL number only counts up). */
export async function makeCrl(p: CaPaths, sign: TbsSigner): Promise<{ der: Uint8Array; number: number; revoked: number }> {
  const config = readCaConfig(p);
  const root = readRoot(p);
  const { number, revoked } = await updateIssued(p, (db) => {
    db.crlNumber += 1;
    return { number: db.crlNumber, revoked: db.certificates.filter((c) => c.revoked).map((c) => ({ serial: c.serial, revocation: c.revoked! })) };
  });
  const now = new Date(Math.floor(Date.now() / 1000) * 1000);
  const tbs = buildTbsCertList({ issuer: root.subject, issuerSpki: root.spki, thisUpdate: now, nextUpdate: new Date(now.getTime() + config.crlValidityDays * DAY_MS), crlNumber: number, revoked });
  const der = await signCrl(tbs, sign);
  await writeFileAtomic(p.crlDer, der, 0o644);
  await writeFileAtomic(p.crlPem, Buffer.from(pem('X509 CRL', der)), 0o644);
  return { der, number, revoked: revoked.length };
}
