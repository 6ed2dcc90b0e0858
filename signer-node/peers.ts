/**
 * Signer ↔ signer transport (Peer service, proto/quorumkey.proto).
 *
 * Outgoing: one mTLS client per peer (created on first use, server name checked against the
 * certificate name `signer-<j>`), and per (session, peer) one client-streaming Exchange call on
 * which the session's messages to that peer are written round after round; the stream is ended
 * when the session finishes or fails.
 *
 * Incoming: signer-node/access.ts has admitted only callers with a certificate signer-<j> (j a
 * configured signer other than self) and only envelopes whose `from` is j, before anything was
 * decoded; the Exchange handler takes j from the certificate again and hands every envelope, with
 * that index as the authenticated sender, to a delivery callback (the session checks the
 * envelope against it once more).
 */
import * as grpc from '@grpc/grpc-js';
import type { TlsIdentity } from '../src/pki/cluster-ca.js';
import type { ProtocolMessage } from '../src/protocol/message.js';
import { services, toEnvelope, type ProtocolEnvelope } from '../src/transport/proto.js';
import { callerName, channelOptions, clientCredentials } from '../src/transport/tls.js';
import type { Logger } from './log.js';

/** Largest protocol message accepted (a presign round of 256 presignatures is about 10 MB). */
export const MAX_PEER_MESSAGE_BYTES = 64 * 1024 * 1024;

export const PEER_CLIENT_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_send_message_length': MAX_PEER_MESSAGE_BYTES,
  'grpc.max_receive_message_length': 4 * 1024 * 1024,
  // A restarted peer is reachable again within seconds, not after a long backoff.
  'grpc.initial_reconnect_backoff_ms': 250,
  'grpc.max_reconnect_backoff_ms': 2000,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
};

export interface PeerAddress {
  index: number;
  endpoint: string;
}

/** The outgoing streams of one session. */
export class SessionStreams {
  private readonly streams = new Map<number, grpc.ClientWritableStream<ProtocolEnvelope>>();
  private ended = false;

  constructor(
    private readonly transport: PeerTransport,
    private readonly label: string,
    private readonly deadline: Date,
    /** Called once per peer whose stream fails before `end()`; the session decides what it means. */
    private readonly onPeerError: (peer: number, detail: string) => void,
  ) {}

  send(messages: readonly ProtocolMessage[]): void {
    if (this.ended) return;
    for (const m of messages) this.stream(m.to).write(toEnvelope(m));
  }

  /** Ends every stream (after the messages already written). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const s of this.streams.values()) s.end();
  }

  private stream(peer: number): grpc.ClientWritableStream<ProtocolEnvelope> {
    let s = this.streams.get(peer);
    if (s) return s;
    const client = this.transport.client(peer);
    const metadata = new grpc.Metadata({ waitForReady: true });
    s = (client as unknown as PeerStub).Exchange(metadata, { deadline: this.deadline }, (err) => {
      if (!err) return;
      this.transport.log.warn('peer stream failed', { session: this.label, peer, code: grpc.status[err.code] ?? err.code, detail: err.details });
      if (!this.ended) this.onPeerError(peer, `${grpc.status[err.code] ?? err.code}: ${err.details}`);
    });
    this.streams.set(peer, s);
    return s;
  }
}

interface PeerStub {
  Exchange(
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null) => void,
  ): grpc.ClientWritableStream<ProtocolEnvelope>;
}

export class PeerTransport {
  private readonly clients = new Map<number, grpc.Client>();
  private readonly credentials: grpc.ChannelCredentials;
  private readonly endpoints: Map<number, string>;

  constructor(
    identity: TlsIdentity,
    readonly self: number,
    peers: readonly PeerAddress[],
    readonly log: Logger,
  ) {
    this.credentials = clientCredentials(identity);
    this.endpoints = new Map(peers.filter((p) => p.index !== self).map((p) => [p.index, p.endpoint]));
  }

  isPeer(index: number): boolean {
    return this.endpoints.has(index);
  }

  client(peer: number): grpc.Client {
    let c = this.clients.get(peer);
    if (c) return c;
    const endpoint = this.endpoints.get(peer);
    if (!endpoint) throw new Error(`party ${peer} is not a configured peer`);
    c = new services.Peer(endpoint, this.credentials, { ...channelOptions(`signer-${peer}`), ...PEER_CLIENT_OPTIONS });
    this.clients.set(peer, c);
    return c;
  }

  streams(label: string, deadline: Date, onPeerError: (peer: number, detail: string) => void): SessionStreams {
    return new SessionStreams(this, label, deadline, onPeerError);
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

/** The peer index a Peer-service caller authenticated as, or undefined. */
export function authenticatedPeer(call: unknown, transport: PeerTransport): number | undefined {
  const name = callerName(call);
  const m = name === undefined ? null : /^signer-([1-9][0-9]{0,3})$/.exec(name);
  if (!m) return undefined;
  const index = Number(m[1]);
  return transport.isPeer(index) ? index : undefined;
}

/**
 * The Exchange handler. `deliver` gets each envelope with the certificate's sender index; it must
 * not throw (it is called from stream events).
 */
export function exchangeHandler(
  transport: PeerTransport,
  deliver: (sender: number, envelope: ProtocolEnvelope) => void,
): grpc.handleClientStreamingCall<ProtocolEnvelope, Record<string, never>> {
  return (call, callback) => {
    const sender = authenticatedPeer(call, transport);
    if (sender === undefined) {
      const who = callerName(call) ?? 'an unauthenticated caller';
      transport.log.warn('peer call refused', { caller: who });
      // Ends the call at once: nothing more is read from the stream.
      callback({ code: grpc.status.PERMISSION_DENIED, details: `Peer.Exchange: '${who}' is not a peer signer of signer ${transport.self}` });
      return;
    }
    let answered = false;
    const answer = (err: grpc.ServerErrorResponse | null) => {
      if (answered) return;
      answered = true;
      if (err) callback(err);
      else callback(null, {});
    };
    call.on('data', (envelope: ProtocolEnvelope) => {
      try {
        deliver(sender, envelope);
      } catch (e) {
        transport.log.error('peer message delivery failed', { peer: sender, error: (e as Error)?.message });
      }
    });
    call.on('end', () => answer(null));
    call.on('error', (e) => {
      transport.log.debug('peer stream closed with error', { peer: sender, error: (e as Error)?.message });
      answered = true;
    });
    call.on('cancelled', () => {
      answered = true;
    });
  };
}

export interface RetirePairNotice {
  key_id: string;
  epoch: number;
  reason: string;
}

/** Tells `peer` that this signer retired their OT correlation for a key (Peer.RetirePair). */
export function sendRetirePair(transport: PeerTransport, peer: number, notice: RetirePairNotice, timeoutMs: number): Promise<void> {
  const client = transport.client(peer) as grpc.Client & {
    RetirePair(req: RetirePairNotice, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void): void;
  };
  return new Promise((resolve, reject) => {
    client.RetirePair(notice, { deadline: new Date(Date.now() + timeoutMs) }, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * The RetirePair handler: only an authenticated peer signer may call it, and it can only retire
 * the pair it is part of. `retire` answers with a status error or null.
 */
export function retirePairHandler(
  transport: PeerTransport,
  retire: (sender: number, notice: RetirePairNotice) => Promise<grpc.ServerErrorResponse | null>,
): grpc.handleUnaryCall<RetirePairNotice, Record<string, never>> {
  return (call, callback) => {
    const sender = authenticatedPeer(call, transport);
    if (sender === undefined) {
      const who = callerName(call) ?? 'an unauthenticated caller';
      transport.log.warn('peer call refused', { method: 'RetirePair', caller: who });
      callback({ code: grpc.status.PERMISSION_DENIED, details: `Peer.RetirePair: '${who}' is not a peer signer of signer ${transport.self}` });
      return;
    }
    retire(sender, call.request).then(
      (err) => (err ? callback(err) : callback(null, {})),
      (e) => {
        transport.log.error('RetirePair failed', { peer: sender, error: (e as Error)?.message });
        callback({ code: grpc.status.INTERNAL, details: `signer ${transport.self}: RetirePair failed (see its log)` });
      },
    );
  };
}
