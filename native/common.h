// Shared by every kernel family of the quorumkey addon (see module.cc for the layout):
// OpenSSL RAII helpers, error-queue hygiene, argument checking, wiped buffers, and the
// per-environment state.
//
// Conventions shared with the TypeScript side:
//   - Points are 33-byte SEC1 compressed encodings; the identity is 33 zero bytes (in and out).
//   - Scalars are 32-byte big-endian; values >= n are reduced mod n (in constant time).
//   - Bad argument types or lengths, and point arguments that are neither the identity nor a
//     valid encoding, throw a TypeError. Nothing here aborts the process.
//   - Secrets (scalars) handed to OpenSSL live in BN_secure_new bignums flagged
//     BN_FLG_CONSTTIME, and every copy is cleansed before release.
//   - The bulk kernels (scalar, OT, VOLE) compute on 64-bit limbs or words in ordinary memory
//     with their own constant-time arithmetic (scalar.h), wipe their own buffers and
//     accumulators, and return secret results in fresh Uint8Arrays that the TypeScript side
//     wipes. They take the Node environment's state, so they run on its JS thread only.
#ifndef QUORUMKEY_NATIVE_COMMON_H_
#define QUORUMKEY_NATIVE_COMMON_H_

#include <napi.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace qk {

struct BnCtxFree {
  void operator()(BN_CTX* c) const { BN_CTX_free(c); }
};
struct BnClearFree {
  void operator()(BIGNUM* b) const { BN_clear_free(b); }
};
struct EcGroupFree {
  void operator()(EC_GROUP* g) const { EC_GROUP_free(g); }
};
struct EcPointClearFree {
  void operator()(EC_POINT* p) const { EC_POINT_clear_free(p); }
};
using BnCtxPtr = std::unique_ptr<BN_CTX, BnCtxFree>;
using SecretBnPtr = std::unique_ptr<BIGNUM, BnClearFree>;
using EcGroupPtr = std::unique_ptr<EC_GROUP, EcGroupFree>;
using EcPointPtr = std::unique_ptr<EC_POINT, EcPointClearFree>;
struct EvpMdFree {
  void operator()(EVP_MD* md) const { EVP_MD_free(md); }
};
struct EvpMdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using EvpMdPtr = std::unique_ptr<EVP_MD, EvpMdFree>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree>;

// Stack buffer that is wiped when it goes out of scope (secret scalar bytes).
template <size_t N>
struct SecretBytes {
  uint8_t b[N];
  SecretBytes() { std::memset(b, 0, N); }
  ~SecretBytes() { OPENSSL_cleanse(b, N); }
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
};

// Restores the thread's OpenSSL error queue on scope exit, so that errors raised while rejecting
// bad input never leak into Node's crypto module (which shares the queue on this thread).
class ErrorQueueGuard {
 public:
  ErrorQueueGuard() { ERR_set_mark(); }
  ~ErrorQueueGuard() { ERR_pop_to_mark(); }
  ErrorQueueGuard(const ErrorQueueGuard&) = delete;
  ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
};

// Throws a JS exception and returns undefined, for `return Throw...(...)` in callbacks.
inline Napi::Value ThrowTypeError(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

inline Napi::Value ThrowOpenSslError(Napi::Env env, const char* fn, const char* step) {
  unsigned long code = ERR_peek_last_error();
  std::string message = std::string(fn) + ": OpenSSL " + step + " failed";
  if (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    message += " (";
    message += buf;
    message += ")";
  }
  Napi::Error::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

// Copies argument `index`, which must be a Uint8Array of exactly `len` bytes, into `out`.
// Copying (rather than reading the JS memory in place) keeps the bytes stable even if the
// array is backed by a SharedArrayBuffer. On failure a TypeError is pending and false returned.
inline bool CopyFixedBytes(const Napi::CallbackInfo& info, size_t index, size_t len, const char* fn,
                    const char* what, uint8_t* out) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(env, std::string(fn) + ": " + what + " must be a Uint8Array");
    return false;
  }
  Napi::Uint8Array arr = info[index].As<Napi::Uint8Array>();
  if (arr.ByteLength() != len) {
    ThrowTypeError(env, std::string(fn) + ": " + what + " must be " + std::to_string(len) +
                            " bytes, got " + std::to_string(arr.ByteLength()));
    return false;
  }
  std::memcpy(out, arr.Data(), len);
  return true;
}

inline bool CheckArgCount(const Napi::CallbackInfo& info, size_t count, const char* fn) {
  if (info.Length() != count) {
    ThrowTypeError(info.Env(), std::string(fn) + ": expected " + std::to_string(count) +
                                   " argument(s), got " + std::to_string(info.Length()));
    return false;
  }
  return true;
}

inline bool AllZero(const uint8_t* p, size_t len) {
  uint8_t acc = 0;
  for (size_t i = 0; i < len; i++) acc |= p[i];
  return acc == 0;
}

// Small fixed loops are unrolled explicitly: in the larger kernels gcc otherwise keeps some of
// them as loops over stack arrays, which made a kernel 2–3× slower.
#if defined(__GNUC__) || defined(__clang__)
#define QK_INLINE inline __attribute__((always_inline))
#define QK_UNROLL _Pragma("GCC unroll 16")
#else
#define QK_INLINE inline
#define QK_UNROLL
#endif

// A heap array of secrets, wiped on release. Allocation failure leaves it empty (check ok()):
// with C++ exceptions disabled a throwing new would abort the process.
template <typename T>
class SecretArray {
 public:
  explicit SecretArray(size_t count)
      : data_(new (std::nothrow) T[count == 0 ? 1 : count]()), count_(count) {}
  ~SecretArray() {
    if (data_) OPENSSL_cleanse(data_.get(), count_ * sizeof(T));
  }
  SecretArray(const SecretArray&) = delete;
  SecretArray& operator=(const SecretArray&) = delete;
  bool ok() const { return data_ != nullptr; }
  T* data() { return data_.get(); }
  T& operator[](size_t i) { return data_[i]; }

 private:
  std::unique_ptr<T[]> data_;
  size_t count_;
};

// Wipes a stack value on scope exit (accumulators of secret sums).
template <typename T>
struct WipeOnExit {
  T& value;
  explicit WipeOnExit(T& v) : value(v) {}
  ~WipeOnExit() { OPENSSL_cleanse(&value, sizeof(T)); }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;
};

// Argument `index` as a Uint8Array, read in place (no copy, for bulk inputs). Every kernel that
// uses this reads each input byte once (into a local copy or straight into the arithmetic), so
// bytes changed concurrently through a SharedArrayBuffer can only give a wrong result, never
// break an invariant the code relies on. On failure a TypeError is pending and false returned.
inline bool GetBytes(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what,
              const uint8_t** data, size_t* len) {
  if (info.Length() <= index || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(info.Env(), std::string(fn) + ": " + what + " must be a Uint8Array");
    return false;
  }
  Napi::Uint8Array arr = info[index].As<Napi::Uint8Array>();
  *data = arr.Data();
  *len = arr.ByteLength();
  return true;
}

inline bool CheckLength(Napi::Env env, const char* fn, const char* what, size_t got, size_t expected) {
  if (got == expected) return true;
  ThrowTypeError(env, std::string(fn) + ": " + what + " must be " + std::to_string(expected) +
                          " bytes, got " + std::to_string(got));
  return false;
}

// Argument `index` as a Uint8Array of exactly `len` bytes, read in place.
inline bool GetFixedBytes(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what,
                          size_t len, const uint8_t** data) {
  size_t got;
  return GetBytes(info, index, fn, what, data, &got) && CheckLength(info.Env(), fn, what, got, len);
}

// Argument `index` as an integer Number in [min, max].
inline bool GetSize(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what,
             size_t min, size_t max, size_t* out) {
  if (info.Length() > index && info[index].IsNumber()) {
    const double d = info[index].As<Napi::Number>().DoubleValue();
    if (d >= static_cast<double>(min) && d <= static_cast<double>(max) &&
        d == static_cast<double>(static_cast<uint64_t>(d))) {
      *out = static_cast<size_t>(d);
      return true;
    }
  }
  ThrowTypeError(info.Env(), std::string(fn) + ": " + what + " must be an integer in [" +
                                 std::to_string(min) + ", " + std::to_string(max) + "]");
  return false;
}

// Per-environment state.
//
// Each Node environment (the main thread and every worker thread) gets its own instance, freed
// by Node when the environment is torn down. Kernels run on the environment's JS thread only,
// so the BN_CTX is never shared between threads. A kernel that moves work off the JS thread
// (AsyncWorker) must allocate its own BN_CTX there.

struct P256State {
  EcGroupPtr group;
  BnCtxPtr ctx;  // secure: it holds temporaries derived from secret scalars
};

// VOLE (vole.cc). The gadget vector g (public protocol constants) set by voleInit, in ordinary and in
// Montgomery form.
struct VoleState {
  std::vector<uint64_t> gadget;      // 4 limbs per entry, ordinary form
  std::vector<uint64_t> gadgetMont;  // 4 limbs per entry, g·R mod n
  size_t powers = 0;                 // g_j = 2^j for j < powers (summed by Horner's rule)
};

struct AddonState {
  P256State p256;
  VoleState vole;
};

inline AddonState* State(Napi::Env env) { return env.GetInstanceData<AddonState>(); }

// One exported function of a kernel family; each family's file ends with its table.
struct KernelExport {
  const char* name;
  Napi::Value (*fn)(const Napi::CallbackInfo&);
};
struct KernelTable {
  const KernelExport* entries;
  size_t count;
};

template <size_t N>
constexpr KernelTable TableOf(const KernelExport (&entries)[N]) {
  return KernelTable{entries, N};
}

extern const KernelTable kCurveKernels;   // curve.cc
extern const KernelTable kScalarKernels;  // scalar.cc
extern const KernelTable kOtKernels;      // ot.cc
extern const KernelTable kVoleKernels;    // vole.cc
extern const KernelTable kHashToCurveKernels;  // hash-to-curve.cc
extern const KernelTable kBaseOtKernels;  // base-ot.cc

// Initialisation of each family's part of the state (false: OpenSSL failed, or a self-test).
bool InitP256(P256State& s);
bool RowHashSelfTest();
bool ScalarSelfTest();

inline Napi::Value ThrowOutOfMemory(Napi::Env env, const char* fn) {
  Napi::Error::New(env, std::string(fn) + ": out of memory").ThrowAsJavaScriptException();
  return env.Undefined();
}

}  // namespace qk

#endif  // QUORUMKEY_NATIVE_COMMON_H_
