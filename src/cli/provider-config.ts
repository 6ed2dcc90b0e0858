/** What the OpenSSL provider needs from a cluster: key references and an openssl.cnf. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { paths, readClusterConfig } from '../cluster/config.js';
import type { KeyReference } from '../keyref/keyref.js';

/** The provider module built by `npm install` (CMake, see CMakeLists.txt). */
export const PROVIDER_MODULE = fileURLToPath(new URL('../../../build-provider/quorumkey.so', import.meta.url));

/** Default per-signature deadline of the provider, milliseconds. */
export const DEFAULT_DEADLINE_MS = 5000;

export function keyReferenceFor(dir: string, keyId: string, spki: Uint8Array, tcp: boolean): KeyReference {
  const config = readClusterConfig(dir);
  if (!tcp) return { keyId, endpoint: `unix:${config.coordinator.socket}`, spki };
  const pki = paths(dir).pki;
  return { keyId, endpoint: config.coordinator.grpc, spki, tls: { caFile: join(pki, 'ca.crt'), certFile: join(pki, 'provider.crt'), keyFile: join(pki, 'provider.key') } };
}

/**
 * An openssl.cnf that activates the default provider (an extra provider alone would switch the
 * implicit default off) and quorumkey with the built module's absolute path.
 */
export function opensslConf(modulePath = PROVIDER_MODULE, deadlineMs = DEFAULT_DEADLINE_MS): string {
  const warning = existsSync(modulePath) ? '' : `# WARNING: ${modulePath} does not exist yet: run npm install\n`;
  return `${warning}# quorumkey: threshold-protected keys through an OpenSSL 3 provider.
# Use with OPENSSL_CONF=/path/to/this/file, or include it from your openssl.cnf.
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
default = default_sect
quorumkey = quorumkey_sect

[default_sect]
activate = 1

[quorumkey_sect]
module = ${modulePath}
activate = 1
# Deadline of one signature request to the coordinator, in milliseconds.
deadline_ms = ${deadlineMs}
`;
}
