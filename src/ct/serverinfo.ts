/**
 * SCTs as a TLS extension (RFC 6962 §3.3.1) for OpenSSL's serverinfo (nginx `ssl_conf_command
 * ServerInfoFile`): a SERVERINFOV2 PEM block, whose data is context (u32) ‖ extension_type (u16)
 * ‖ extension_data<0..2^16-1>. The context names every message that may carry the list — the
 * TLS 1.2 ServerHello and the TLS 1.3 leaf CertificateEntry — so one file serves both. Pure.
 */
import { encodeSctList, type Sct } from './structures.js';
import { TlsWriter } from './tls-encoding.js';

/** signed_certificate_timestamp (RFC 6962 §3.3.1). */
export const SCT_EXTENSION_TYPE = 18;
// OpenSSL's SSL_EXT_CLIENT_HELLO | SSL_EXT_TLS1_2_SERVER_HELLO | SSL_EXT_TLS1_3_CERTIFICATE.
const SCT_CONTEXT = 0x0080 | 0x0100 | 0x1000;

export const SERVERINFOV2_LABEL = 'SERVERINFOV2 FOR signed_certificate_timestamp';

export function sctServerInfo(scts: readonly Sct[]): Uint8Array {
  return new TlsWriter().uint(SCT_CONTEXT, 4).uint(SCT_EXTENSION_TYPE, 2).vector(encodeSctList(scts), 2).finish();
}

export function sctServerInfoPem(scts: readonly Sct[]): string {
  const b64 = Buffer.from(sctServerInfo(scts)).toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${SERVERINFOV2_LABEL}-----\n${b64}-----END ${SERVERINFOV2_LABEL}-----\n`;
}
