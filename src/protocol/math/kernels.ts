/**
 * The native addon (native/*.cc, registered in native/module.cc) and the registry of the kernels that handle secrets.
 *
 * DESIGN §3, "constant time by construction in the signer's path": secret scalars, choice bits
 * and OT columns are handled by the native kernels; a signer refuses to start without them and
 * the TypeScript implementations are a test reference only (docs/constant-time.md).
 *
 * - loadNative() returns the addon, loaded once from build/Release/quorumkey_native.node, or
 *   undefined when it did not load or QUORUMKEY_NATIVE=0 (tests and benchmarks use that to run
 *   the reference in a process that is not a signer). nativeAddonStatus() says which and why.
 * - Every module with a secret-handling kernel registers it here (registerKernel), naming what is
 *   active and how to switch to its TypeScript reference. useReferenceKernelsForTests() switches
 *   all of them, for tests only.
 * - nativeKernelsProblem() is what the signer's entry point (signer-node/main.ts) checks before
 *   anything else: undefined when every kernel of SIGNER_KERNELS is the native one, else a
 *   one-line reason naming the addon and how to build it.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Where the addon is built, relative to the repository root. */
export const ADDON_FILE = 'build/Release/quorumkey_native.node';

/** Candidate locations relative to this module: from src/protocol/math and dist/src/protocol/math. */
const CANDIDATES = ['../../../' + ADDON_FILE, '../../../../' + ADDON_FILE];

export interface AddonLoad<T> {
  readonly addon: T | undefined;
  /** The path tried last (the build location), absolute. */
  readonly path: string;
  /** Why it did not load, when it did not. */
  readonly reason?: string;
}

/**
 * Tries each candidate (relative to this module, or absolute) in order and returns the first
 * addon that loads, else the reason the last candidate failed. Exported for the loader's tests.
 */
export function loadAddonFrom<T>(candidates: readonly string[]): AddonLoad<T> {
  const require = createRequire(import.meta.url);
  let path = '';
  let reason = 'no candidate location';
  for (const rel of candidates) {
    path = rel.startsWith('/') ? rel : fileURLToPath(new URL(rel, import.meta.url));
    try {
      return { addon: require(path) as T, path };
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      reason = err.code === 'MODULE_NOT_FOUND' ? 'not built' : `${err.code ?? 'error'}: ${(err.message ?? String(e)).split('\n')[0]}`;
    }
  }
  return { addon: undefined, path, reason };
}

const disabled = process.env.QUORUMKEY_NATIVE === '0';
const loaded: AddonLoad<unknown> = disabled ? { addon: undefined, path: fileURLToPath(new URL(CANDIDATES[CANDIDATES.length - 1]!, import.meta.url)), reason: 'disabled by QUORUMKEY_NATIVE=0' } : loadAddonFrom(CANDIDATES);

/** The addon, or undefined (not built, not loadable, or QUORUMKEY_NATIVE=0). */
export function loadNative<T>(): T | undefined {
  return loaded.addon as T | undefined;
}

export function nativeAddonStatus(): { loaded: boolean; disabled: boolean; path: string; reason?: string } {
  return { loaded: loaded.addon !== undefined, disabled, path: loaded.path, ...(loaded.reason ? { reason: loaded.reason } : {}) };
}

// ---------------------------------------------------------------------------------------------
// The registry.

/** The kernels a signer needs native: every one handles secrets. */
export const SIGNER_KERNELS = ['p256', 'vole', 'ot-bits', 'ot-row-hash', 'secret-scalar', 'base-ot'] as const;
export type KernelName = (typeof SIGNER_KERNELS)[number];

export interface KernelRegistration {
  readonly name: KernelName;
  /** 'native' or the name of what is active instead. */
  active(): string;
  /** Switches this kernel to its TypeScript reference. */
  useReference(): void;
}

const registry = new Map<KernelName, KernelRegistration>();
let referenceSelected = false;

export function registerKernel(registration: KernelRegistration): void {
  registry.set(registration.name, registration);
  if (referenceSelected) registration.useReference();
}

/**
 * TESTS ONLY: switches every registered kernel (and any registered later) to its TypeScript
 * reference, for good in this process. A signer refuses to start after this.
 */
export function useReferenceKernelsForTests(): void {
  referenceSelected = true;
  for (const r of registry.values()) r.useReference();
}

/** What each signer kernel currently is ('native', the reference's name, or 'not loaded'). */
export function activeKernels(): Record<KernelName, string> {
  return Object.fromEntries(SIGNER_KERNELS.map((n) => [n, registry.get(n)?.active() ?? 'not loaded'])) as Record<KernelName, string>;
}

/**
 * Why this process must not run a signer, in one line; undefined when the native addon is
 * loaded and every signer kernel is native.
 */
export function nativeKernelsProblem(): string | undefined {
  const build = 'run npm install to build it';
  if (disabled) return `QUORUMKEY_NATIVE=0 selects the TypeScript reference kernels (a test reference only); a signer needs the native addon ${loaded.path} — unset QUORUMKEY_NATIVE (${build} if it is missing)`;
  if (!loaded.addon) return `the native addon ${loaded.path} did not load (${loaded.reason}); a signer needs it — ${build}`;
  if (referenceSelected) return `the TypeScript reference kernels were selected (useReferenceKernelsForTests); a signer needs the native addon ${loaded.path}`;
  const wrong = Object.entries(activeKernels()).filter(([, v]) => v !== 'native');
  if (wrong.length > 0) return `kernels not native: ${wrong.map(([k, v]) => `${k}=${v}`).join(', ')}; a signer needs the native addon ${loaded.path} for all of them (${build})`;
  return undefined;
}
