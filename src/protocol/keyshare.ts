/** What one party holds for a key after key generation or refresh. */
import type { OtExtReceiverSetup, OtExtSenderSetup } from './ot/extension.js';

export interface KeyShare {
  keyId: string;
  /** 0 after key generation, +1 per refresh; shares of different epochs never combine. */
  epoch: number;
  threshold: number;
  /** All share holders' indices (the x-coordinates of the sharing), ascending. */
  parties: readonly number[];
  self: number;
  /** x_self = F(self): the secret share. */
  secretShare: bigint;
  /** F(0)·G, 33-byte compressed. */
  publicKey: Uint8Array;
  /** F(j)·G for every party j. */
  publicShares: ReadonlyMap<number, Uint8Array>;
  /** Pairwise zero-sharing seeds, by peer. */
  zeroSeeds: ReadonlyMap<number, Uint8Array>;
  /** OT-extension state where this party is the sender ("Alice" of the multiplication), by peer. */
  otSender: ReadonlyMap<number, OtExtSenderSetup>;
  /** OT-extension state where this party is the receiver ("Bob"), by peer. */
  otReceiver: ReadonlyMap<number, OtExtReceiverSetup>;
  /**
   * Peers whose OT correlation with this party is retired (a failed OT / VOLE check between the
   * two, or the peer retired it): their otSender / otReceiver entries are gone, and no presign
   * with them starts until a pair re-setup (pair-setup.ts) or a refresh sets up fresh base OTs.
   */
  retiredPeers: ReadonlySet<number>;
  /**
   * The key's signing policy as the holders agreed on it in the key generation echo (canonical
   * bytes; src/policy/key-policy.ts gives them meaning — the protocol only agrees on and keeps
   * them). Empty: none was sealed (a share from before policies), and the signer signs nothing.
   */
  policy: Uint8Array;
}

export const MIN_PARTIES = 2;
export const MAX_PARTIES = 16;
