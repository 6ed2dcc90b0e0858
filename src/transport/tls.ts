/** Mutual-TLS credentials for grpc-js from cluster identities, and the caller's identity on a call. */
import * as grpc from '@grpc/grpc-js';
import type { TlsIdentity } from '../pki/cluster-ca.js';

/** Server side: a client certificate signed by the cluster CA is required. */
export function serverCredentials(identity: TlsIdentity): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(identity.ca, [{ private_key: identity.key, cert_chain: identity.cert }], true);
}

export function clientCredentials(identity: TlsIdentity): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(identity.ca, identity.key, identity.cert);
}

/** Channel options that make the client check the server certificate against `expectedName`. */
export function channelOptions(expectedName: string): grpc.ChannelOptions {
  return { 'grpc.ssl_target_name_override': expectedName, 'grpc.default_authority': expectedName };
}

interface CallWithAuth {
  getAuthContext?: () => { sslPeerCertificate?: { subject?: Record<string, unknown> } } | null;
}

/** The CN of the verified client certificate, or undefined (unix socket, no TLS). */
export function callerName(call: unknown): string | undefined {
  const cn = (call as CallWithAuth).getAuthContext?.()?.sslPeerCertificate?.subject?.CN;
  return typeof cn === 'string' ? cn : undefined;
}
