/** quorumkey as a library: the pure threshold protocol (no I/O). */
export { Party } from './protocol/party.js';
export { keyGenSession, refreshSession, KeyDealingSession } from './protocol/dkg.js';
export { PresignSession, presignatureId, type Presignature } from './protocol/presign.js';
export { signShare, combineSignature, COMBINER, type Signature, type SignRequest } from './protocol/online.js';
export { Session } from './protocol/session.js';
export { runSessions } from './protocol/local-network.js';
export { ProtocolAbort, type AbortReason } from './protocol/errors.js';
export type { KeyShare } from './protocol/keyshare.js';
export type { ProtocolMessage, Payload } from './protocol/message.js';
export { encodeKeyShare, decodeKeyShare } from './protocol/keyshare-codec.js';
export { derSignature, rawSignature, publicKeySpki, verifyDigest } from './protocol/ecdsa.js';
export { systemRng, seededRng, type Rng } from './protocol/rng.js';
