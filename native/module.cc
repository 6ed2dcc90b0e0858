// quorumkey native kernels (node-addon-api, OpenSSL libcrypto): module registration.
//
// The pure TypeScript implementations (src/protocol/math/*.ts, src/protocol/ot/*.ts,
// src/protocol/vole.ts, @noble/curves) stay the reference; every kernel is tested against them
// (test/native/*.test.ts).
//
// Layout, one file per kernel family, each ending with its table of exported functions:
//   common.h          OpenSSL RAII helpers, error-queue hygiene, argument checking, wiped
//                     buffers, the per-environment state (one per Node environment).
//   scalar.h          constant-time arithmetic mod n on 4×64-bit limbs (Montgomery multiplication).
//   curve.h/.cc       P-256 group operations on 33-byte SEC1 compressed points.
//   field.h           arithmetic mod p (the P-256 field) on the limbs of scalar.h.
//   hash-to-curve.cc  RFC 9380 P256_XMD:SHA-256_SSWU_RO_.
//   base-ot.cc        the base OT of src/protocol/ot/base-ot.ts, 128 instances per call.
//   scalar.cc         secret scalar arithmetic for src/protocol/math/secret-scalar.ts.
//   keccak.h          lane-parallel Keccak-f[1600] / SHAKE256 (AVX-512, AVX2 or 64-bit words).
//   ot.cc             OT extension: SHAKE256 row hashing, column parities, transposition.
//   vole.cc           the VOLE arithmetic of src/protocol/vole.ts.
//   module.cc         this file: the state, the self-tests, the registration of every table.
// A new family is a new file with its own table, listed in kFamilies below.
//
// Node.js note: a Node binary that bundles OpenSSL exports its libcrypto symbols, and the dynamic
// linker binds this addon's libcrypto references to them (the executable comes first in the
// global lookup scope). Both are OpenSSL 3.x with the same ABI; nothing here relies on which copy
// answers, and the error queue is restored on every return so Node's own crypto never sees our
// errors.

#include "common.h"

namespace qk {
namespace {

const KernelTable* const kFamilies[] = {&kCurveKernels, &kHashToCurveKernels, &kBaseOtKernels, &kOtKernels, &kVoleKernels, &kScalarKernels};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ErrorQueueGuard errors;
  auto state = std::make_unique<AddonState>();
  if (!InitP256(state->p256)) {
    ThrowOpenSslError(env, "quorumkey_native", "P-256 initialisation");
    return exports;
  }
  if (!RowHashSelfTest()) {
    ThrowOpenSslError(env, "quorumkey_native", "OT row hash self-test against SHAKE256");
    return exports;
  }
  if (!ScalarSelfTest()) {
    Napi::Error::New(env, "quorumkey_native: scalar arithmetic self-test failed")
        .ThrowAsJavaScriptException();
    return exports;
  }
  env.SetInstanceData<AddonState>(state.release());  // freed by Node with the environment
  for (const KernelTable* family : kFamilies) {
    for (size_t i = 0; i < family->count; i++) {
      const KernelExport& e = family->entries[i];
      exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
    }
  }
  return exports;
}

}  // namespace
}  // namespace qk

static Napi::Object InitQuorumkey(Napi::Env env, Napi::Object exports) { return qk::Init(env, exports); }

NODE_API_MODULE(quorumkey_native, InitQuorumkey)
