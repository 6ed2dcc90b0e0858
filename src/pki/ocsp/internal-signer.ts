/**
 * The coordinator's own OCSP responder: it signs through the same SignService as every client,
 * under the caller identity `ocsp-responder`, so the responder key's client ACL and policy
 * (ocsp) decide, and the signers check every ResponseData like any other content.
 */
import { caPaths, OCSP_RESPONDER_IDENTITY, type CaPaths } from '../ca/store.js';
import type { SignService } from '../../coordinator/sign.js';
import { OcspResponder, type ResponderLog } from './responder.js';

const SIGN_DEADLINE_MS = 10_000;

export function caResponder(clusterRoot: string, sign: Pick<SignService, 'sign'>, log: ResponderLog): { responder: OcspResponder; paths: CaPaths } {
  const paths = caPaths(clusterRoot);
  const responder = new OcspResponder(
    paths,
    async (keyId, tbs) => (await sign.sign({ keyId, tbs, digestAlg: 'sha256', caller: OCSP_RESPONDER_IDENTITY, deadline: Date.now() + SIGN_DEADLINE_MS })).signatureDer,
    log,
  );
  return { responder, paths };
}
