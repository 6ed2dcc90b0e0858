/**
 * The native OT row hasher: OtRowHasher (extension.ts) computed by the addon (native/ot.cc:
 * SHAKE256 on 8, 4 or 1 rows at once with the lane-parallel Keccak of native/keccak.h, by what
 * the CPU offers) instead of one node:crypto Hash per row. Byte-identical to nodeCryptoRowHasher
 * (test/native/ot-hasher.test.ts). Importing this module installs it when the addon is built
 * (and QUORUMKEY_NATIVE is not 0); src/protocol/vole.ts imports it, so the protocol always has it.
 */
import { loadNative, registerKernel } from '../math/kernels.js';
import { useOtRowHasher, type OtRowHasher } from './extension.js';

/** The addon's row-hashing surface. */
export interface NativeOtHasher {
  otRowHash(prefix: Uint8Array, rows: Uint8Array, m: number, outputBytes: number, mask: Uint8Array | undefined): Uint8Array;
  /** Which Keccak the addon selected for this CPU. */
  otRowHashVariant(): 'avx512' | 'avx2' | 'words';
}

export function nativeRowHasher(addon: NativeOtHasher): OtRowHasher {
  return (prefix, rows, m, outputBytes, mask) => addon.otRowHash(prefix, rows, m, outputBytes, mask);
}

const addon = loadNative<NativeOtHasher>();

/** The native row hasher, when the addon is built (and not disabled by QUORUMKEY_NATIVE=0). */
export const nativeOtRowHasher: OtRowHasher | undefined = addon ? nativeRowHasher(addon) : undefined;

/** The addon's Keccak variant (for benchmarks), when it is loaded. */
export const nativeRowHashVariant: string | undefined = addon?.otRowHashVariant();

/** Which row hasher this module installed at load: 'native', or 'node:crypto' (left as it was). */
export const defaultOtRowHasher: 'native' | 'node:crypto' = nativeOtRowHasher ? 'native' : 'node:crypto';

let installed = false;
if (nativeOtRowHasher) {
  useOtRowHasher(nativeOtRowHasher);
  installed = true;
}
registerKernel({
  name: 'ot-row-hash',
  active: () => (installed ? 'native' : 'node:crypto'),
  useReference: () => {
    useOtRowHasher(undefined);
    installed = false;
  },
});
