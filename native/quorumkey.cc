// quorumkey native kernels (node-addon-api, OpenSSL libcrypto).
//
// The pure TypeScript implementations (src/protocol/math/*.ts, @noble/curves) stay the reference;
// every kernel here is tested against them (test/native/*.test.ts).
//
// Layout:
//   1. Common: OpenSSL RAII helpers, error-queue hygiene, argument checking.
//   2. Per-environment state (one instance per Node environment / worker thread).
//   3. P-256 group operations on 33-byte SEC1 compressed points.
//   4. Scalar arithmetic mod n: 4×64-bit limbs, Montgomery multiplication (constant time).
//   5. SHAKE256 row hashing for OT extension (the OtRowHasher of src/protocol/ot/extension.ts).
//   6. VOLE kernels (the arithmetic of src/protocol/vole.ts).
//   7. OT-extension bit matrices (column parities of the consistency check, transposition).
//   8. Secret scalar arithmetic mod n for the protocol (src/protocol/math/secret-scalar.ts).
//   9. Registration table and module initialisation.
// Add a new group of kernels as a new numbered section and list its functions in the table.
//
// Conventions shared with the TypeScript side:
//   - Points are 33-byte SEC1 compressed encodings; the identity is 33 zero bytes (in and out).
//   - Scalars are 32-byte big-endian; values >= n are reduced mod n (in constant time).
//   - Bad argument types or lengths, and point arguments that are neither the identity nor a
//     valid encoding, throw a TypeError. Nothing here aborts the process.
//   - Secrets (scalars) live in BN_secure_new bignums flagged BN_FLG_CONSTTIME, and every copy is
//     cleansed before release.
//   - The bulk kernels (sections 4–8) differ: they compute on 64-bit limbs in ordinary memory with
//     their own constant-time arithmetic (section 4), wipe their own buffers and accumulators,
//     and return secret results in fresh Uint8Arrays that the TypeScript side wipes; the VOLE
//     kernels reject scalars >= n instead of reducing them (section 6). They take the Node
//     environment's state, so they run on its JS thread only.
//
// Node.js note: a Node binary that bundles OpenSSL exports its libcrypto symbols, and the dynamic
// linker binds this addon's libcrypto references to them (the executable comes first in the
// global lookup scope). Both are OpenSSL 3.x with the same ABI; nothing here relies on which copy
// answers, and the error queue is restored on every return so Node's own crypto never sees our
// errors.

#include <napi.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#if defined(__x86_64__)
#include <x86intrin.h>  // _addcarry_u64, _subborrow_u64 (section 4)
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace {

// ============================================================================================
// 1. Common
// ============================================================================================

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
Napi::Value ThrowTypeError(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowOpenSslError(Napi::Env env, const char* fn, const char* step) {
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
bool CopyFixedBytes(const Napi::CallbackInfo& info, size_t index, size_t len, const char* fn,
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

bool CheckArgCount(const Napi::CallbackInfo& info, size_t count, const char* fn) {
  if (info.Length() != count) {
    ThrowTypeError(info.Env(), std::string(fn) + ": expected " + std::to_string(count) +
                                   " argument(s), got " + std::to_string(info.Length()));
    return false;
  }
  return true;
}

bool AllZero(const uint8_t* p, size_t len) {
  uint8_t acc = 0;
  for (size_t i = 0; i < len; i++) acc |= p[i];
  return acc == 0;
}

// ============================================================================================
// 2. Per-environment state
// ============================================================================================
//
// Each Node environment (the main thread and every worker thread) gets its own instance, freed
// by Node when the environment is torn down. Kernels run on the environment's JS thread only,
// so the BN_CTX is never shared between threads. A kernel that moves work off the JS thread
// (AsyncWorker) must allocate its own BN_CTX there.

struct P256State {
  EcGroupPtr group;
  BnCtxPtr ctx;  // secure: it holds temporaries derived from secret scalars
};

// Section 5. The contexts hold secret rows between calls only as Keccak state that the next
// EVP_DigestInit_ex / EVP_MD_CTX_copy_ex overwrites; they are reset (and so cleansed by the
// provider's freectx) at the end of every call.
struct ShakeState {
  EvpMdPtr md;       // SHAKE256, fetched once
  EvpMdCtxPtr base;  // the prefix absorbed
  EvpMdCtxPtr work;  // copy of base, plus one row
};

// Section 6. The gadget vector g (public protocol constants) set by voleInit, in ordinary and in
// Montgomery form.
struct VoleState {
  std::vector<uint64_t> gadget;      // 4 limbs per entry, ordinary form
  std::vector<uint64_t> gadgetMont;  // 4 limbs per entry, g·R mod n
  size_t powers = 0;                 // g_j = 2^j for j < powers (summed by Horner's rule)
};

struct AddonState {
  P256State p256;
  ShakeState shake;
  VoleState vole;
};

AddonState* State(Napi::Env env) { return env.GetInstanceData<AddonState>(); }

// ============================================================================================
// 3. P-256 group operations
// ============================================================================================

constexpr size_t kP256PointBytes = 33;
constexpr size_t kP256ScalarBytes = 32;

// Group order n, big-endian.
constexpr uint8_t kP256Order[kP256ScalarBytes] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};

// k mod n for a 256-bit k, in constant time: since k < 2^256 < 2n, one conditional
// subtraction suffices, selected by mask on the final borrow.
void ReduceScalarModN(const uint8_t in[kP256ScalarBytes], uint8_t out[kP256ScalarBytes]) {
  SecretBytes<kP256ScalarBytes> diff;
  unsigned borrow = 0;
  for (size_t i = kP256ScalarBytes; i-- > 0;) {
    unsigned d = static_cast<unsigned>(in[i]) - kP256Order[i] - borrow;
    diff.b[i] = static_cast<uint8_t>(d);
    borrow = (d >> 8) & 1u;
  }
  // borrow == 0  <=>  k >= n  <=>  take the difference.
  const uint8_t take_diff = static_cast<uint8_t>(borrow - 1u);  // 0xff or 0x00
  for (size_t i = 0; i < kP256ScalarBytes; i++) {
    out[i] = static_cast<uint8_t>((diff.b[i] & take_diff) | (in[i] & ~take_diff));
  }
}

// Reads argument `index` as a secret scalar (32 bytes, reduced mod n) into a constant-time,
// secure-heap BIGNUM. Returns null with a pending exception on failure.
SecretBnPtr ReadScalar(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  SecretBytes<kP256ScalarBytes> raw;
  if (!CopyFixedBytes(info, index, kP256ScalarBytes, fn, "scalar", raw.b)) return nullptr;
  SecretBytes<kP256ScalarBytes> reduced;
  ReduceScalarModN(raw.b, reduced.b);
  SecretBnPtr k(BN_secure_new());
  if (!k) {
    ThrowOpenSslError(info.Env(), fn, "BN_secure_new");
    return nullptr;
  }
  BN_set_flags(k.get(), BN_FLG_CONSTTIME);
  if (BN_bin2bn(reduced.b, kP256ScalarBytes, k.get()) == nullptr) {
    ThrowOpenSslError(info.Env(), fn, "BN_bin2bn");
    return nullptr;
  }
  return k;
}

// Decodes a canonical 33-byte compressed encoding (02/03 prefix, x < p, on the curve, not the
// identity). Returns null for anything else; never throws. Any OpenSSL errors stay behind the
// caller's ErrorQueueGuard.
EcPointPtr DecodeCompressed(const P256State& s, const uint8_t enc[kP256PointBytes]) {
  if (enc[0] != 0x02 && enc[0] != 0x03) return nullptr;
  EcPointPtr p(EC_POINT_new(s.group.get()));
  if (!p) return nullptr;
  // oct2point rejects x >= p and x with no square root (no point on the curve).
  if (EC_POINT_oct2point(s.group.get(), p.get(), enc, kP256PointBytes, s.ctx.get()) != 1) {
    return nullptr;
  }
  if (EC_POINT_is_at_infinity(s.group.get(), p.get()) ||
      EC_POINT_is_on_curve(s.group.get(), p.get(), s.ctx.get()) != 1) {
    return nullptr;
  }
  return p;
}

// Reads argument `index` as a point: the identity (33 zero bytes) or a valid compressed
// encoding. Anything else throws a TypeError (null return with a pending exception).
EcPointPtr ReadPoint(const Napi::CallbackInfo& info, size_t index, const P256State& s,
                     const char* fn, const char* what) {
  uint8_t enc[kP256PointBytes];
  if (!CopyFixedBytes(info, index, kP256PointBytes, fn, what, enc)) return nullptr;
  if (AllZero(enc, kP256PointBytes)) {
    EcPointPtr p(EC_POINT_new(s.group.get()));
    if (!p || EC_POINT_set_to_infinity(s.group.get(), p.get()) != 1) {
      ThrowOpenSslError(info.Env(), fn, "EC_POINT_set_to_infinity");
      return nullptr;
    }
    return p;
  }
  EcPointPtr p = DecodeCompressed(s, enc);
  if (!p) {
    ThrowTypeError(info.Env(), std::string(fn) + ": " + what +
                                   " is not a valid compressed P-256 point (nor the identity)");
  }
  return p;
}

// Encodes a point as 33 bytes: compressed SEC1, or 33 zero bytes for the identity.
Napi::Value EncodePoint(Napi::Env env, const P256State& s, const EC_POINT* p, const char* fn) {
  Napi::Uint8Array out = Napi::Uint8Array::New(env, kP256PointBytes);
  uint8_t* dst = out.Data();
  if (EC_POINT_is_at_infinity(s.group.get(), p)) {
    std::memset(dst, 0, kP256PointBytes);
    return out;
  }
  size_t n = EC_POINT_point2oct(s.group.get(), p, POINT_CONVERSION_COMPRESSED, dst,
                                kP256PointBytes, s.ctx.get());
  if (n != kP256PointBytes) return ThrowOpenSslError(env, fn, "EC_POINT_point2oct");
  return out;
}

// p256MulBase(k: Uint8Array(32)): Uint8Array(33) — k·G.
Napi::Value P256MulBase(const Napi::CallbackInfo& info) {
  static const char* const fn = "p256MulBase";
  Napi::Env env = info.Env();
  ErrorQueueGuard errors;
  if (!CheckArgCount(info, 1, fn)) return env.Undefined();
  const P256State& s = State(env)->p256;
  SecretBnPtr k = ReadScalar(info, 0, fn);
  if (!k) return env.Undefined();
  EcPointPtr r(EC_POINT_new(s.group.get()));
  if (!r) return ThrowOpenSslError(env, fn, "EC_POINT_new");
  if (EC_POINT_mul(s.group.get(), r.get(), k.get(), nullptr, nullptr, s.ctx.get()) != 1) {
    return ThrowOpenSslError(env, fn, "EC_POINT_mul");
  }
  return EncodePoint(env, s, r.get(), fn);
}

// p256Mul(point: Uint8Array(33), k: Uint8Array(32)): Uint8Array(33) — k·P.
Napi::Value P256Mul(const Napi::CallbackInfo& info) {
  static const char* const fn = "p256Mul";
  Napi::Env env = info.Env();
  ErrorQueueGuard errors;
  if (!CheckArgCount(info, 2, fn)) return env.Undefined();
  const P256State& s = State(env)->p256;
  EcPointPtr p = ReadPoint(info, 0, s, fn, "point");
  if (!p) return env.Undefined();
  SecretBnPtr k = ReadScalar(info, 1, fn);
  if (!k) return env.Undefined();
  EcPointPtr r(EC_POINT_new(s.group.get()));
  if (!r) return ThrowOpenSslError(env, fn, "EC_POINT_new");
  if (EC_POINT_mul(s.group.get(), r.get(), nullptr, p.get(), k.get(), s.ctx.get()) != 1) {
    return ThrowOpenSslError(env, fn, "EC_POINT_mul");
  }
  return EncodePoint(env, s, r.get(), fn);
}

// p256Add(a: Uint8Array(33), b: Uint8Array(33)): Uint8Array(33) — A + B.
Napi::Value P256Add(const Napi::CallbackInfo& info) {
  static const char* const fn = "p256Add";
  Napi::Env env = info.Env();
  ErrorQueueGuard errors;
  if (!CheckArgCount(info, 2, fn)) return env.Undefined();
  const P256State& s = State(env)->p256;
  EcPointPtr a = ReadPoint(info, 0, s, fn, "first point");
  if (!a) return env.Undefined();
  EcPointPtr b = ReadPoint(info, 1, s, fn, "second point");
  if (!b) return env.Undefined();
  EcPointPtr r(EC_POINT_new(s.group.get()));
  if (!r) return ThrowOpenSslError(env, fn, "EC_POINT_new");
  if (EC_POINT_add(s.group.get(), r.get(), a.get(), b.get(), s.ctx.get()) != 1) {
    return ThrowOpenSslError(env, fn, "EC_POINT_add");
  }
  return EncodePoint(env, s, r.get(), fn);
}

// p256IsValid(point: Uint8Array): boolean — canonical compressed, on the curve, not the
// identity. Returns false (never throws) for anything else, including non-Uint8Array input.
Napi::Value P256IsValid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ErrorQueueGuard errors;
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return Napi::Boolean::New(env, false);
  }
  Napi::Uint8Array arr = info[0].As<Napi::Uint8Array>();
  if (arr.ByteLength() != kP256PointBytes) return Napi::Boolean::New(env, false);
  uint8_t enc[kP256PointBytes];
  std::memcpy(enc, arr.Data(), kP256PointBytes);
  return Napi::Boolean::New(env, DecodeCompressed(State(env)->p256, enc) != nullptr);
}

bool InitP256(P256State& s) {
  s.group.reset(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  s.ctx.reset(BN_CTX_secure_new());
  return s.group && s.ctx;
}

// ============================================================================================
// 4. Scalar arithmetic mod n
// ============================================================================================
//
// Integers mod n (the P-256 group order) as four little-endian 64-bit limbs (needs a compiler
// with unsigned __int128: gcc or clang, 64-bit targets). Functions take and return canonical
// values, in [0, n), unless they say otherwise. Montgomery form (a·R mod n, R = 2^256) is used
// only for multipliers: MontMul(a·R, b) = a·b mod n in ordinary form, so a value that
// multiplies many others (θ, the gadget) is converted once and everything else stays in
// ordinary form, the form of the wire and of the TypeScript reference. Sums of many products
// are accumulated unreduced (Wide) and reduced once (ReduceWide).
//
// Constant time: no branch and no memory index depends on a limb value; carries come from
// add-with-carry (the x86-64 intrinsics, else 128-bit sums) and selections use all-ones /
// all-zero masks. (As always in C, this trusts the compiler not to turn a mask back into a
// branch; gcc and clang emit straight-line code for these patterns.) Register and stack
// temporaries of these inline functions are not wiped one by one; the kernels below wipe their
// buffers and accumulators.

// Small fixed loops are unrolled explicitly: in the larger kernels gcc otherwise keeps some of
// them as loops over stack arrays, which made a kernel 2–3× slower.
#if defined(__GNUC__) || defined(__clang__)
#define QK_INLINE inline __attribute__((always_inline))
#define QK_UNROLL _Pragma("GCC unroll 16")
#else
#define QK_INLINE inline
#define QK_UNROLL
#endif

using u128 = unsigned __int128;

struct Scalar {
  uint64_t v[4];
};

// An unreduced sum of products of canonical values, little-endian; see ReduceWide for its bound.
struct Wide {
  uint64_t v[9];
};

constexpr Scalar kZero = {{0, 0, 0, 0}};
constexpr Scalar kOne = {{1, 0, 0, 0}};
// n, little-endian limbs (kP256Order above is the same number, big-endian bytes).
constexpr Scalar kOrder = {
    {0xf3b9cac2fc632551ULL, 0xbce6faada7179e84ULL, 0xffffffffffffffffULL, 0xffffffff00000000ULL}};
// −n^−1 mod 2^64, for the Montgomery reduction.
constexpr uint64_t kOrderInv = 0xccd1c8aaee00bc4fULL;
static_assert(static_cast<uint64_t>(kOrder.v[0] * kOrderInv) == ~uint64_t{0},
              "kOrderInv must be -n^-1 mod 2^64");
// 2^256 mod n = 2^256 − n (n > 2^255), below 2^224.
constexpr Scalar kTwo256 = {
    {0x0c46353d039cdaafULL, 0x4319055258e8617bULL, 0x0000000000000000ULL, 0x00000000ffffffffULL}};
// R^2 mod n = 2^512 mod n, and 2^384 mod n (checked at load time by ScalarSelfTest).
constexpr Scalar kR2 = {
    {0x83244c95be79eea2ULL, 0x4699799c49bd6fa6ULL, 0x2845b2392b6bec59ULL, 0x66e12d94f3d95620ULL}};
constexpr Scalar kTwo384 = {
    {0xf01cf013fc632551ULL, 0x679b73e19ad16947ULL, 0x652e96b7ccca0a99ULL, 0x431905529c0166ceULL}};

QK_INLINE uint64_t AddCarry(uint64_t a, uint64_t b, unsigned char& carry) {
#if defined(__x86_64__)
  unsigned long long r;
  carry = _addcarry_u64(carry, a, b, &r);
  return r;
#else
  const u128 t = static_cast<u128>(a) + b + carry;
  carry = static_cast<unsigned char>(t >> 64);
  return static_cast<uint64_t>(t);
#endif
}

QK_INLINE uint64_t SubBorrow(uint64_t a, uint64_t b, unsigned char& borrow) {
#if defined(__x86_64__)
  unsigned long long r;
  borrow = _subborrow_u64(borrow, a, b, &r);
  return r;
#else
  const u128 t = static_cast<u128>(a) - b - borrow;
  borrow = static_cast<unsigned char>((t >> 64) & 1);
  return static_cast<uint64_t>(t);
#endif
}

// lo(a·b + c + d); d becomes the high word. Never overflows: (2^64−1)^2 + 2(2^64−1) < 2^128.
QK_INLINE uint64_t MulAdd(uint64_t a, uint64_t b, uint64_t c, uint64_t& d) {
  const u128 t = static_cast<u128>(a) * b + c + d;
  d = static_cast<uint64_t>(t >> 64);
  return static_cast<uint64_t>(t);
}

// An optimisation barrier: the compiler must assume the value is unknown. It keeps masks from
// being turned back into branches, and keeps selections in general registers (gcc otherwise
// vectorises them through the stack, with store-forwarding stalls that cost more than the
// arithmetic).
QK_INLINE uint64_t Opaque(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
  __asm__("" : "+r"(x));
#endif
  return x;
}

QK_INLINE uint64_t MaskOf(uint64_t bit) { return Opaque(uint64_t{0} - bit); }  // bit ∈ {0, 1}

// out = a − n mod 2^256; returns the borrow, 1 iff a < n.
QK_INLINE uint64_t SubOrder(uint64_t out[4], const uint64_t a[4]) {
  unsigned char borrow = 0;
  QK_UNROLL
  for (int i = 0; i < 4; i++) out[i] = SubBorrow(a[i], kOrder.v[i], borrow);
  return borrow;
}

// mask (all ones or all zeros) ? a : b
QK_INLINE Scalar Select(uint64_t mask, const Scalar& a, const Scalar& b) {
  Scalar r;
  QK_UNROLL
  for (int i = 0; i < 4; i++) r.v[i] = Opaque((a.v[i] & mask) | (b.v[i] & ~mask));
  return r;
}

QK_INLINE Scalar AndMask(const Scalar& a, uint64_t mask) {
  Scalar r;
  QK_UNROLL
  for (int i = 0; i < 4; i++) r.v[i] = Opaque(a.v[i] & mask);
  return r;
}

// 1 iff a < n.
QK_INLINE uint64_t IsCanonical(const Scalar& a) {
  uint64_t d[4];
  return SubOrder(d, a.v);
}

// a mod n for any a < 2^256 (< 2n, so one conditional subtraction).
QK_INLINE Scalar Reduce256(const Scalar& a) {
  Scalar d;
  const uint64_t borrow = SubOrder(d.v, a.v);
  return Select(MaskOf(borrow), a, d);
}

QK_INLINE Scalar AddMod(const Scalar& a, const Scalar& b) {
  Scalar s;
  unsigned char carry = 0;
  QK_UNROLL
  for (int i = 0; i < 4; i++) s.v[i] = AddCarry(a.v[i], b.v[i], carry);
  Scalar d;
  const uint64_t borrow = SubOrder(d.v, s.v);
  // a + b ≥ n  ⟺  the sum overflowed 2^256, or its low 256 bits are ≥ n.
  return Select(MaskOf(carry | (borrow ^ 1)), d, s);
}

QK_INLINE Scalar SubMod(const Scalar& a, const Scalar& b) {
  Scalar d;
  unsigned char borrow = 0;
  QK_UNROLL
  for (int i = 0; i < 4; i++) d.v[i] = SubBorrow(a.v[i], b.v[i], borrow);
  const uint64_t mask = MaskOf(borrow);  // a < b: add n back
  unsigned char carry = 0;
  QK_UNROLL
  for (int i = 0; i < 4; i++) d.v[i] = AddCarry(d.v[i], kOrder.v[i] & mask, carry);
  return d;
}

QK_INLINE Scalar NegMod(const Scalar& a) { return SubMod(kZero, a); }

// a·b·2^(−64·rounds) mod n by CIOS Montgomery multiplication over the first `rounds` limbs of b,
// for a < n and b < 2^(64·rounds) (b < n when rounds = 4): the result before the final
// subtraction is below (n·2^(64·rounds) + 2^(64·rounds)·n) / 2^(64·rounds) = 2n.
template <int rounds>
QK_INLINE Scalar MontMulRounds(const Scalar& a, const Scalar& b) {
  uint64_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0;
  QK_UNROLL
  for (int i = 0; i < rounds; i++) {
    const uint64_t bi = b.v[i];
    uint64_t c = 0;
    t0 = MulAdd(a.v[0], bi, t0, c);
    t1 = MulAdd(a.v[1], bi, t1, c);
    t2 = MulAdd(a.v[2], bi, t2, c);
    t3 = MulAdd(a.v[3], bi, t3, c);
    unsigned char k = 0;
    t4 = AddCarry(t4, c, k);
    const uint64_t t5 = k;
    const uint64_t q = t0 * kOrderInv;
    c = 0;
    (void)MulAdd(q, kOrder.v[0], t0, c);  // low word is zero by the choice of q
    t0 = MulAdd(q, kOrder.v[1], t1, c);
    t1 = MulAdd(q, kOrder.v[2], t2, c);
    t2 = MulAdd(q, kOrder.v[3], t3, c);
    k = 0;
    t3 = AddCarry(t4, c, k);
    t4 = t5 + k;
  }
  // t < 2n: subtract n once if t ≥ n (t4 is 0 or 1).
  const Scalar lo = {{t0, t1, t2, t3}};
  Scalar d;
  const uint64_t borrow = SubOrder(d.v, lo.v);
  return Select(MaskOf(t4 | (borrow ^ 1)), d, lo);
}

// a·b·2^−256 mod n for a, b < n.
inline Scalar MontMul(const Scalar& a, const Scalar& b) { return MontMulRounds<4>(a, b); }

inline Scalar ToMont(const Scalar& a) { return MontMul(a, kR2); }

// acc += a·b (a, b < n).
QK_INLINE void MulAcc(Wide& acc, const Scalar& a, const Scalar& b) {
  uint64_t p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  QK_UNROLL
  for (int i = 0; i < 4; i++) {
    uint64_t c = 0;
    QK_UNROLL
    for (int j = 0; j < 4; j++) p[i + j] = MulAdd(a.v[j], b.v[i], p[i + j], c);
    p[i + 4] = c;
  }
  unsigned char carry = 0;
  QK_UNROLL
  for (int i = 0; i < 8; i++) acc.v[i] = AddCarry(acc.v[i], p[i], carry);
  acc.v[8] += carry;
}

// acc·2^−256 mod n, for acc < 2^542 (e.g. up to 2^29 products of canonical values). Four
// Montgomery rounds leave r = (acc + Q·n)/2^256 < 2^286 + n < 2^287, i.e. r = r4·2^256 + lo with
// r4 < 2^31; then r ≡ lo + t with t = r4·(2^256 mod n) < 2^31·2^224 = 2^255. If lo + t carries,
// the carry is worth 2^256 ≡ 2^256 mod n and is added back: the low part is then below t, so
// adding 2^256 mod n (< 2^224) cannot carry again. One conditional subtraction finishes.
inline Scalar ReduceWide(const Wide& in) {
  uint64_t a[9];
  std::memcpy(a, in.v, sizeof a);
  QK_UNROLL
  for (int i = 0; i < 4; i++) {
    const uint64_t q = a[i] * kOrderInv;
    uint64_t c = 0;
    QK_UNROLL
    for (int j = 0; j < 4; j++) a[i + j] = MulAdd(q, kOrder.v[j], a[i + j], c);
    unsigned char k = 0;
    a[i + 4] = AddCarry(a[i + 4], c, k);
    QK_UNROLL
    for (int j = i + 5; j < 9; j++) a[j] = AddCarry(a[j], 0, k);
  }
  // t = r4·(2^256 mod n) < 2^255: four limbs, the high word c is zero.
  uint64_t c = 0;
  uint64_t t[4];
  QK_UNROLL
  for (int j = 0; j < 4; j++) t[j] = MulAdd(a[8], kTwo256.v[j], 0, c);
  Scalar s;
  unsigned char carry = 0;
  QK_UNROLL
  for (int j = 0; j < 4; j++) s.v[j] = AddCarry(a[4 + j], t[j], carry);
  const uint64_t mask = MaskOf(carry);
  unsigned char carry2 = 0;
  QK_UNROLL
  for (int j = 0; j < 4; j++) s.v[j] = AddCarry(s.v[j], kTwo256.v[j] & mask, carry2);
  return Reduce256(s);
}

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
QK_INLINE uint64_t Load64Be(const uint8_t* p) {
  uint64_t x;
  std::memcpy(&x, p, 8);
  return __builtin_bswap64(x);
}
QK_INLINE void Store64Be(uint8_t* p, uint64_t x) {
  x = __builtin_bswap64(x);
  std::memcpy(p, &x, 8);
}
#else
QK_INLINE uint64_t Load64Be(const uint8_t* p) {
  uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}
QK_INLINE void Store64Be(uint8_t* p, uint64_t x) { std::memcpy(p, &x, 8); }
#endif

// 32 bytes big-endian → limbs (not reduced).
QK_INLINE Scalar LoadScalarBe(const uint8_t* p) {
  return Scalar{{Load64Be(p + 24), Load64Be(p + 16), Load64Be(p + 8), Load64Be(p)}};
}

QK_INLINE void StoreScalarBe(uint8_t* p, const Scalar& a) {
  Store64Be(p, a.v[3]);
  Store64Be(p + 8, a.v[2]);
  Store64Be(p + 16, a.v[1]);
  Store64Be(p + 24, a.v[0]);
}

// BigInt(p[0, 48)) mod n, exactly: the value is hi·2^256 + lo with hi < 2^128 and
// lo < 2^256 < 2n; hi·2^256 mod n = (2^384 mod n)·hi·2^−128, a two-round Montgomery product.
inline Scalar ReduceWide48(const uint8_t* p) {
  const Scalar hi = {{Load64Be(p + 8), Load64Be(p), 0, 0}};
  const Scalar lo = LoadScalarBe(p + 16);
  return AddMod(MontMulRounds<2>(kTwo384, hi), Reduce256(lo));
}

// Load-time check of the constants against each other: with R = 2^256 − n,
// MontMul(R^2, 1) = R, MontMul(R, 1) = 1, two-round MontMul(2^384, 1) = R, and the reduction
// of R·R^2 as a Wide (= R^3, reduced to R^3·R^−1) equals R^2. Then known answers for
// ReduceWide's rare branches (random inputs reach them with probability about 2^−32), computed
// independently as acc·2^−256 mod n: the first folds a carry back in, the others end at or
// above n before the last subtraction.
bool ScalarSelfTest() {
  Scalar r;  // 2^256 − n = (~n) + 1
  unsigned char carry = 1;
  QK_UNROLL
  for (int i = 0; i < 4; i++) r.v[i] = AddCarry(~kOrder.v[i], 0, carry);
  Wide w = {{0, 0, 0, 0, 0, 0, 0, 0, 0}};
  MulAcc(w, r, kR2);
  const Scalar checks[4][2] = {{MontMul(kR2, kOne), r},
                               {MontMul(r, kOne), kOne},
                               {MontMulRounds<2>(kTwo384, kOne), r},
                               {ReduceWide(w), kR2}};
  bool ok = true;
  for (const auto& c : checks) ok = ok && std::memcmp(c[0].v, c[1].v, sizeof c[0].v) == 0;
  for (int i = 0; i < 4; i++) ok = ok && r.v[i] == kTwo256.v[i];
  struct {
    Wide acc;
    Scalar expected;
  } const kats[] = {
      {{{0xf3b9cac2fc632551ULL, 0xbce6faada7179e84ULL, 0xffffffffffffffffULL, 0xffffffff00000000ULL,
         0xffffffffffffffffULL, 0xffffffffffffffffULL, 0xffffffffffffffffULL, 0xffffffffffffffffULL,
         0x0000000000000001ULL}},
       {{0x188c6a7a0739b55dULL, 0x86320aa4b1d0c2f6ULL, 0x0000000000000000ULL,
         0x00000001fffffffeULL}}},
      {{{0, 0, 0, 0, 0xf3b9cac2fc632551ULL, 0xbce6faada7179e84ULL, 0xffffffffffffffffULL,
         0xffffffff00000000ULL, 0}},
       {{0, 0, 0, 0}}},
      {{{0x0c46353d039cdaafULL, 0x4319055258e8617bULL, 0x0000000000000000ULL, 0x00000000ffffffffULL,
         0xf3b9cac2fc632551ULL, 0xbce6faada7179e84ULL, 0xffffffffffffffffULL, 0xffffffff00000000ULL,
         0}},
       {{1, 0, 0, 0}}},
      {{{0xf3b9cac2fc632551ULL, 0xbce6faada7179e84ULL, 0xffffffffffffffffULL, 0xffffffff00000000ULL,
         0xf3b9cac2fc632551ULL, 0xbce6faada7179e84ULL, 0xffffffffffffffffULL, 0xffffffff00000000ULL,
         0}},
       {{0, 0, 0, 0}}},
  };
  for (const auto& kat : kats) {
    const Scalar got = ReduceWide(kat.acc);
    ok = ok && std::memcmp(got.v, kat.expected.v, sizeof got.v) == 0;
  }
  return ok;
}

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
bool GetBytes(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what,
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

bool CheckLength(Napi::Env env, const char* fn, const char* what, size_t got, size_t expected) {
  if (got == expected) return true;
  ThrowTypeError(env, std::string(fn) + ": " + what + " must be " + std::to_string(expected) +
                          " bytes, got " + std::to_string(got));
  return false;
}

// Argument `index` as an integer Number in [min, max].
bool GetSize(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what,
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

// ============================================================================================
// 5. SHAKE256 row hashing for OT extension
// ============================================================================================
//
// otRowHash(prefix, rows, m, outputBytes, mask?): Uint8Array(m·outputBytes) computes exactly
// OtRowHasher's function (src/protocol/ot/extension.ts): output j (j < m) is
// SHAKE256(prefix ‖ u32be(j) ‖ (row_j ⊕ mask)) truncated to outputBytes, with
// row_j = rows[16j, 16j + 16) and mask (Δ) 16 bytes, or absent (undefined / null). `rows` may be
// longer than 16·m bytes. The prefix is absorbed once into a context of the per-environment
// state and every row starts from a copy of it (EVP_MD_CTX_copy_ex), so there is no
// per-row fetch, allocation on the JS heap or JS call. Rows and outputs are secret: the row
// buffer is wiped, and the contexts are reset (the provider wipes its Keccak state) on return.

constexpr size_t kOtRowBytes = 16;
constexpr size_t kOtMaxRows = 0xffffffffu;         // j is written as a u32
constexpr size_t kOtMaxTotal = size_t{1} << 31;    // bytes of output per call

bool InitShake(ShakeState& s) {
  s.md.reset(EVP_MD_fetch(nullptr, "SHAKE256", nullptr));
  s.base.reset(EVP_MD_CTX_new());
  s.work.reset(EVP_MD_CTX_new());
  return s.md && s.base && s.work;
}

// Resets both contexts on scope exit.
class ShakeReset {
 public:
  explicit ShakeReset(ShakeState& s) : s_(s) {}
  ~ShakeReset() {
    EVP_MD_CTX_reset(s_.work.get());
    EVP_MD_CTX_reset(s_.base.get());
  }
  ShakeReset(const ShakeReset&) = delete;
  ShakeReset& operator=(const ShakeReset&) = delete;

 private:
  ShakeState& s_;
};

Napi::Value OtRowHash(const Napi::CallbackInfo& info) {
  static const char* const fn = "otRowHash";
  Napi::Env env = info.Env();
  ErrorQueueGuard errors;
  if (info.Length() != 4 && info.Length() != 5) {
    return ThrowTypeError(env, std::string(fn) + ": expected 4 or 5 arguments, got " +
                                   std::to_string(info.Length()));
  }
  const uint8_t* prefix;
  size_t prefixLen;
  const uint8_t* rows;
  size_t rowsLen;
  size_t m;
  size_t outputBytes;
  if (!GetBytes(info, 0, fn, "prefix", &prefix, &prefixLen) ||
      !GetBytes(info, 1, fn, "rows", &rows, &rowsLen) ||
      !GetSize(info, 2, fn, "m", 0, kOtMaxRows, &m) ||
      !GetSize(info, 3, fn, "outputBytes", 0, kOtMaxTotal, &outputBytes)) {
    return env.Undefined();
  }
  uint8_t mask[kOtRowBytes] = {0};
  if (info.Length() == 5 && !info[4].IsUndefined() && !info[4].IsNull()) {
    if (!CopyFixedBytes(info, 4, kOtRowBytes, fn, "mask", mask)) return env.Undefined();
  }
  if (rowsLen / kOtRowBytes < m) {
    return ThrowTypeError(env, std::string(fn) + ": rows must hold at least 16·m = " +
                                   std::to_string(m * kOtRowBytes) + " bytes, got " +
                                   std::to_string(rowsLen));
  }
  if (outputBytes != 0 && m > kOtMaxTotal / outputBytes) {
    return ThrowTypeError(env, std::string(fn) + ": m·outputBytes exceeds " +
                                   std::to_string(kOtMaxTotal) + " bytes");
  }
  const size_t total = m * outputBytes;
  Napi::Uint8Array out = Napi::Uint8Array::New(env, total);
  if (total == 0) return out;
  uint8_t* dst = out.Data();

  ShakeState& s = State(env)->shake;
  ShakeReset reset(s);
  SecretBytes<4 + kOtRowBytes> input;
  const char* step = nullptr;
  if (EVP_DigestInit_ex(s.base.get(), s.md.get(), nullptr) != 1) {
    step = "EVP_DigestInit_ex";
  } else if (EVP_DigestUpdate(s.base.get(), prefix, prefixLen) != 1) {
    step = "EVP_DigestUpdate";
  }
  for (size_t j = 0; step == nullptr && j < m; j++) {
    const uint32_t index = static_cast<uint32_t>(j);
    input.b[0] = static_cast<uint8_t>(index >> 24);
    input.b[1] = static_cast<uint8_t>(index >> 16);
    input.b[2] = static_cast<uint8_t>(index >> 8);
    input.b[3] = static_cast<uint8_t>(index);
    const uint8_t* row = rows + j * kOtRowBytes;
    for (size_t k = 0; k < kOtRowBytes; k++) input.b[4 + k] = row[k] ^ mask[k];
    if (EVP_MD_CTX_copy_ex(s.work.get(), s.base.get()) != 1) {
      step = "EVP_MD_CTX_copy_ex";
    } else if (EVP_DigestUpdate(s.work.get(), input.b, sizeof input.b) != 1) {
      step = "EVP_DigestUpdate";
    } else if (EVP_DigestFinalXOF(s.work.get(), dst + j * outputBytes, outputBytes) != 1) {
      step = "EVP_DigestFinalXOF";
    }
  }
  OPENSSL_cleanse(mask, sizeof mask);
  if (step != nullptr) {
    OPENSSL_cleanse(dst, total);
    return ThrowOpenSslError(env, fn, step);
  }
  return out;
}

// ============================================================================================
// 6. VOLE kernels
// ============================================================================================
//
// The scalar arithmetic of src/protocol/vole.ts (DKLs19 Protocol 1 as DKLs23 uses it), with
// byte-for-byte the results of its TypeScript reference kernel; see that file for the protocol.
// Shapes (ξ = gadget length, set once by voleInit; B instances; m = ξ·B OTs, OT ot = b·ξ + j;
// three correlations k per OT):
//   - an OT output is 144 bytes = 3 × 48; correlation k is BigInt(bytes[48k, 48k + 48)) mod n.
//   - scalars are 32-byte big-endian. Vectors over the OTs are OT-major, scalar (ot·3 + k) at
//     byte (ot·3 + k)·32; check values ot·32; per instance: χ and η b·32, θ and shares b·64 + k·32,
//     alpha (Alice's a_b0, a_b1 and mask â_b) b·96 + k·32.
//   - choice bits β: bit ot at byte ot >> 3, bit ot & 7.
// Unlike section 3, these kernels do not reduce: values the TypeScript side computes (gadget,
// alpha, θ) and the intermediate vectors it keeps (Bob's pads, Alice's own shares) must be
// canonical (< n), else TypeError. Scalars received from the peer (τ, η) are range-checked here,
// in the order the reference decodes them (η_b, then τ of instance b, for b = 0, 1, …); the
// first one ≥ n is reported as { badField, badIndex } (its index in that field) and the
// TypeScript side raises the ProtocolAbort, exactly as decodeScalar would. Everything derived
// from the OT outputs, from alpha and from β is secret: β selects by mask.

constexpr size_t kScalarBytes = 32;
constexpr size_t kVoleCorrelations = 3;
constexpr size_t kVoleWide = 48;
constexpr size_t kVoleOutputBytes = kVoleCorrelations * kVoleWide;  // 144
constexpr size_t kVoleMaxOts = 4096;                                 // gadget length bound
constexpr size_t kVoleMaxCount = 1 << 16;                            // instances per call

inline Scalar GadgetAt(const std::vector<uint64_t>& g, size_t j) {
  Scalar r;
  std::memcpy(r.v, &g[4 * j], sizeof r.v);
  return r;
}

inline uint64_t ChoiceMask(const uint8_t* choices, size_t ot) {
  return MaskOf((choices[ot >> 3] >> (ot & 7)) & 1u);
}

// Σ_j g_j·x_j over one instance, fed x_j for j = ξ−1 down to 0 (that order is required): the
// entries g_j = 2^j (j < powers) by Horner's rule, h ← 2h + x_j; the others as unreduced
// Montgomery products g_j·R·x_j, reduced once (ReduceWide removes the R). ξ ≤ 4096 products
// stay far below ReduceWide's bound. Wipes itself.
class GadgetSum {
 public:
  explicit GadgetSum(const VoleState& s) : s_(s) {}
  ~GadgetSum() {
    OPENSSL_cleanse(&horner_, sizeof horner_);
    OPENSSL_cleanse(&acc_, sizeof acc_);
  }
  GadgetSum(const GadgetSum&) = delete;
  GadgetSum& operator=(const GadgetSum&) = delete;

  void Reset() {
    horner_ = kZero;
    acc_ = Wide{{0, 0, 0, 0, 0, 0, 0, 0, 0}};
  }
  QK_INLINE void Add(size_t j, const Scalar& x) {
    if (j < s_.powers) {  // j is public
      horner_ = AddMod(AddMod(horner_, horner_), x);
    } else {
      MulAcc(acc_, GadgetAt(s_.gadgetMont, j), x);
    }
  }
  Scalar Result() const { return AddMod(horner_, ReduceWide(acc_)); }

 private:
  const VoleState& s_;
  Scalar horner_ = kZero;
  Wide acc_ = {{0, 0, 0, 0, 0, 0, 0, 0, 0}};
};

// θ_0·x_0 + θ_1·x_1 mod n, with θ in Montgomery form: two unreduced products, one reduction.
QK_INLINE Scalar Combine(const Scalar& t0m, const Scalar& x0, const Scalar& t1m, const Scalar& x1) {
  Wide acc = {{0, 0, 0, 0, 0, 0, 0, 0, 0}};
  MulAcc(acc, t0m, x0);
  MulAcc(acc, t1m, x1);
  return ReduceWide(acc);
}

// ξ from the state; TypeError if voleInit has not run.
bool VoleOts(Napi::Env env, const char* fn, size_t* xi) {
  *xi = State(env)->vole.gadget.size() / 4;
  if (*xi != 0) return true;
  Napi::Error::New(env, std::string(fn) + ": voleInit has not been called")
      .ThrowAsJavaScriptException();
  return false;
}

// Loads `count` canonical scalars (32-byte big-endian each) into out; TypeError if any is ≥ n.
// The range test is folded over all values and checked once.
bool LoadCanonicalScalars(Napi::Env env, const char* fn, const char* what, const uint8_t* src,
                          size_t count, Scalar* out) {
  uint64_t ok = 1;
  for (size_t i = 0; i < count; i++) {
    out[i] = LoadScalarBe(src + i * kScalarBytes);
    ok &= IsCanonical(out[i]);
  }
  if (ok) return true;
  ThrowTypeError(env, std::string(fn) + ": " + what + " holds a value not below the group order");
  return false;
}

Napi::Value ThrowOutOfMemory(Napi::Env env, const char* fn) {
  Napi::Error::New(env, std::string(fn) + ": out of memory").ThrowAsJavaScriptException();
  return env.Undefined();
}

// voleInit(gadget: Uint8Array(ξ·32)): sets the gadget vector g_0 … g_{ξ−1} (canonical).
Napi::Value VoleInit(const Napi::CallbackInfo& info) {
  static const char* const fn = "voleInit";
  Napi::Env env = info.Env();
  if (!CheckArgCount(info, 1, fn)) return env.Undefined();
  const uint8_t* src;
  size_t len;
  if (!GetBytes(info, 0, fn, "gadget", &src, &len)) return env.Undefined();
  if (len == 0 || len % kScalarBytes != 0 || len / kScalarBytes > kVoleMaxOts) {
    return ThrowTypeError(env, std::string(fn) + ": gadget must be 1 to " +
                                   std::to_string(kVoleMaxOts) + " scalars of 32 bytes");
  }
  const size_t xi = len / kScalarBytes;
  std::vector<Scalar> g(xi);
  if (!LoadCanonicalScalars(env, fn, "gadget", src, xi, g.data())) return env.Undefined();
  VoleState& s = State(env)->vole;
  s.gadget.assign(4 * xi, 0);
  s.gadgetMont.assign(4 * xi, 0);
  s.powers = 0;
  bool powers = true;
  for (size_t j = 0; j < xi; j++) {
    const Scalar gm = ToMont(g[j]);
    std::memcpy(&s.gadget[4 * j], g[j].v, sizeof g[j].v);
    std::memcpy(&s.gadgetMont[4 * j], gm.v, sizeof gm.v);
    Scalar power = kZero;  // 2^j, for j < 256 (all below n)
    if (j < 256) power.v[j / 64] = uint64_t{1} << (j % 64);
    powers = powers && j < 256 && std::memcmp(power.v, g[j].v, sizeof power.v) == 0;
    if (powers) s.powers = j + 1;
  }
  return env.Undefined();
}

// voleBobExpand(outputs: Uint8Array(m·144), choices: Uint8Array(⌈m/8⌉), count: number):
//   { chi: Uint8Array(B·32), pads: Uint8Array(m·96) }
// χ_b = Σ_j β_{bξ+j}·g_j, pads = the three correlations of every OT output.
Napi::Value VoleBobExpand(const Napi::CallbackInfo& info) {
  static const char* const fn = "voleBobExpand";
  Napi::Env env = info.Env();
  size_t xi;
  if (!CheckArgCount(info, 3, fn) || !VoleOts(env, fn, &xi)) return env.Undefined();
  const uint8_t* outputs;
  size_t outputsLen;
  const uint8_t* choices;
  size_t choicesLen;
  size_t count;
  if (!GetBytes(info, 0, fn, "outputs", &outputs, &outputsLen) ||
      !GetBytes(info, 1, fn, "choices", &choices, &choicesLen) ||
      !GetSize(info, 2, fn, "count", 1, kVoleMaxCount, &count)) {
    return env.Undefined();
  }
  const size_t m = xi * count;
  if (!CheckLength(env, fn, "outputs", outputsLen, m * kVoleOutputBytes) ||
      !CheckLength(env, fn, "choices", choicesLen, (m + 7) / 8)) {
    return env.Undefined();
  }
  const VoleState& s = State(env)->vole;
  Napi::Uint8Array chiOut = Napi::Uint8Array::New(env, count * kScalarBytes);
  Napi::Uint8Array padsOut = Napi::Uint8Array::New(env, m * kVoleCorrelations * kScalarBytes);
  uint8_t* chi = chiOut.Data();
  uint8_t* pads = padsOut.Data();
  Scalar acc = kZero;
  WipeOnExit<Scalar> wipeAcc(acc);
  for (size_t b = 0; b < count; b++) {
    acc = kZero;
    for (size_t j = 0; j < xi; j++) {
      const size_t ot = b * xi + j;
      acc = AddMod(acc, AndMask(GadgetAt(s.gadget, j), ChoiceMask(choices, ot)));
      for (size_t k = 0; k < kVoleCorrelations; k++) {
        StoreScalarBe(pads + (ot * kVoleCorrelations + k) * kScalarBytes,
                      ReduceWide48(outputs + ot * kVoleOutputBytes + k * kVoleWide));
      }
    }
    StoreScalarBe(chi + b * kScalarBytes, acc);
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("chi", chiOut);
  result.Set("pads", padsOut);
  return result;
}

// Alice's inputs α: `count` groups of (a_0, a_1, â), canonical. On failure an exception is
// pending and nullptr returned.
std::unique_ptr<SecretArray<Scalar>> LoadAlpha(Napi::Env env, const char* fn, const uint8_t* bytes,
                                               size_t len, size_t* count) {
  const size_t group = kVoleCorrelations * kScalarBytes;
  *count = len / group;
  if (*count == 0 || *count > kVoleMaxCount || len % group != 0) {
    ThrowTypeError(env, std::string(fn) + ": alpha must be 1 to " + std::to_string(kVoleMaxCount) +
                            " groups of 3 scalars");
    return nullptr;
  }
  auto alpha = std::make_unique<SecretArray<Scalar>>(*count * kVoleCorrelations);
  if (!alpha->ok()) {
    ThrowOutOfMemory(env, fn);
    return nullptr;
  }
  if (!LoadCanonicalScalars(env, fn, "alpha", bytes, *count * kVoleCorrelations, alpha->data())) return nullptr;
  return alpha;
}

// voleAliceCorrect(outputs0: Uint8Array(m·144), outputs1: Uint8Array(m·144),
//                  alpha: Uint8Array(B·96)):
//   { tau: Uint8Array(m·96), own: Uint8Array(m·96) }
// τ = h0 − h1 + alpha_b (per correlation), own = −h0.
Napi::Value VoleAliceCorrect(const Napi::CallbackInfo& info) {
  static const char* const fn = "voleAliceCorrect";
  Napi::Env env = info.Env();
  size_t xi;
  if (!CheckArgCount(info, 3, fn) || !VoleOts(env, fn, &xi)) return env.Undefined();
  const uint8_t* outputs0;
  size_t outputs0Len;
  const uint8_t* outputs1;
  size_t outputs1Len;
  const uint8_t* alphaBytes;
  size_t alphaLen;
  if (!GetBytes(info, 0, fn, "outputs0", &outputs0, &outputs0Len) ||
      !GetBytes(info, 1, fn, "outputs1", &outputs1, &outputs1Len) ||
      !GetBytes(info, 2, fn, "alpha", &alphaBytes, &alphaLen)) {
    return env.Undefined();
  }
  size_t count;
  std::unique_ptr<SecretArray<Scalar>> alpha = LoadAlpha(env, fn, alphaBytes, alphaLen, &count);
  if (!alpha) return env.Undefined();
  const size_t m = xi * count;
  if (!CheckLength(env, fn, "outputs0", outputs0Len, m * kVoleOutputBytes) ||
      !CheckLength(env, fn, "outputs1", outputs1Len, m * kVoleOutputBytes)) {
    return env.Undefined();
  }
  const size_t vectorBytes = m * kVoleCorrelations * kScalarBytes;
  Napi::Uint8Array tauOut = Napi::Uint8Array::New(env, vectorBytes);
  Napi::Uint8Array ownOut = Napi::Uint8Array::New(env, vectorBytes);
  uint8_t* tau = tauOut.Data();
  uint8_t* own = ownOut.Data();
  for (size_t b = 0; b < count; b++) {
    for (size_t j = 0; j < xi; j++) {
      const size_t ot = b * xi + j;
      for (size_t k = 0; k < kVoleCorrelations; k++) {
        const Scalar h0 = ReduceWide48(outputs0 + ot * kVoleOutputBytes + k * kVoleWide);
        const Scalar h1 = ReduceWide48(outputs1 + ot * kVoleOutputBytes + k * kVoleWide);
        const size_t at = (ot * kVoleCorrelations + k) * kScalarBytes;
        StoreScalarBe(tau + at, AddMod(SubMod(h0, h1), (*alpha)[b * kVoleCorrelations + k]));
        StoreScalarBe(own + at, NegMod(h0));
      }
    }
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("tau", tauOut);
  result.Set("own", ownOut);
  return result;
}

// Loads θ_b0, θ_b1 (canonical) in Montgomery form.
bool LoadThetas(Napi::Env env, const char* fn, const uint8_t* src, size_t count,
                std::vector<Scalar>* out) {
  out->assign(2 * count, kZero);
  if (!LoadCanonicalScalars(env, fn, "thetas", src, 2 * count, out->data())) return false;
  for (Scalar& t : *out) t = ToMont(t);
  return true;
}

// voleAliceFinish(own: Uint8Array(m·96), alpha: Uint8Array(B·96), thetas: Uint8Array(B·64)):
//   { eta: Uint8Array(B·32), check: Uint8Array(m·32), shares: Uint8Array(B·64) }
// η_b = â_b + θ_b0·a_b0 + θ_b1·a_b1; check value −(own_2 + θ_b0·own_0 + θ_b1·own_1) per OT;
// shares c_b = (Σ_j g_j·own_0, Σ_j g_j·own_1).
Napi::Value VoleAliceFinish(const Napi::CallbackInfo& info) {
  static const char* const fn = "voleAliceFinish";
  Napi::Env env = info.Env();
  size_t xi;
  if (!CheckArgCount(info, 3, fn) || !VoleOts(env, fn, &xi)) return env.Undefined();
  const uint8_t* ownBytes;
  size_t ownLen;
  const uint8_t* alphaBytes;
  size_t alphaLen;
  const uint8_t* thetaBytes;
  size_t thetaLen;
  if (!GetBytes(info, 0, fn, "own", &ownBytes, &ownLen) ||
      !GetBytes(info, 1, fn, "alpha", &alphaBytes, &alphaLen) ||
      !GetBytes(info, 2, fn, "thetas", &thetaBytes, &thetaLen)) {
    return env.Undefined();
  }
  size_t count;
  std::unique_ptr<SecretArray<Scalar>> alpha = LoadAlpha(env, fn, alphaBytes, alphaLen, &count);
  if (!alpha) return env.Undefined();
  const size_t m = xi * count;
  if (!CheckLength(env, fn, "own", ownLen, m * kVoleCorrelations * kScalarBytes) ||
      !CheckLength(env, fn, "thetas", thetaLen, 2 * count * kScalarBytes)) {
    return env.Undefined();
  }
  std::vector<Scalar> thetas;
  if (!LoadThetas(env, fn, thetaBytes, count, &thetas)) return env.Undefined();
  const VoleState& s = State(env)->vole;
  Napi::Uint8Array etaOut = Napi::Uint8Array::New(env, count * kScalarBytes);
  Napi::Uint8Array checkOut = Napi::Uint8Array::New(env, m * kScalarBytes);
  Napi::Uint8Array sharesOut = Napi::Uint8Array::New(env, 2 * count * kScalarBytes);
  uint8_t* eta = etaOut.Data();
  uint8_t* check = checkOut.Data();
  uint8_t* shares = sharesOut.Data();
  Scalar o[kVoleCorrelations];
  WipeOnExit<Scalar[kVoleCorrelations]> wipeO(o);
  GadgetSum sum0(s), sum1(s);
  uint64_t canonical = 1;
  for (size_t b = 0; b < count; b++) {
    const Scalar& t0 = thetas[2 * b];
    const Scalar& t1 = thetas[2 * b + 1];
    const Scalar* a = &(*alpha)[b * kVoleCorrelations];
    StoreScalarBe(eta + b * kScalarBytes, AddMod(a[2], Combine(t0, a[0], t1, a[1])));
    sum0.Reset();
    sum1.Reset();
    for (size_t j = xi; j-- > 0;) {
      const size_t ot = b * xi + j;
      for (size_t k = 0; k < kVoleCorrelations; k++) {
        o[k] = LoadScalarBe(ownBytes + (ot * kVoleCorrelations + k) * kScalarBytes);
        canonical &= IsCanonical(o[k]);
      }
      StoreScalarBe(check + ot * kScalarBytes, NegMod(AddMod(o[2], Combine(t0, o[0], t1, o[1]))));
      sum0.Add(j, o[0]);
      sum1.Add(j, o[1]);
    }
    StoreScalarBe(shares + 2 * b * kScalarBytes, sum0.Result());
    StoreScalarBe(shares + (2 * b + 1) * kScalarBytes, sum1.Result());
  }
  if (!canonical) {
    OPENSSL_cleanse(shares, 2 * count * kScalarBytes);
    OPENSSL_cleanse(eta, count * kScalarBytes);
    OPENSSL_cleanse(check, m * kScalarBytes);
    return ThrowTypeError(env, std::string(fn) + ": own holds a value not below the group order");
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("eta", etaOut);
  result.Set("check", checkOut);
  result.Set("shares", sharesOut);
  return result;
}

// voleBobFinish(pads: Uint8Array(m·96), choices: Uint8Array(⌈m/8⌉), tau: Uint8Array(m·96),
//               eta: Uint8Array(B·32), thetas: Uint8Array(B·64)):
//   { badField: 'eta' | 'tau', badIndex: number }  — the first received scalar ≥ n, or
//   { check: Uint8Array(m·32), shares: Uint8Array(B·64) }
// own_k = pad_k + β·τ_k; check value own_2 + θ_b0·own_0 + θ_b1·own_1 − β·η_b per OT;
// shares d_b = (Σ_j g_j·own_0, Σ_j g_j·own_1).
Napi::Value VoleBobFinish(const Napi::CallbackInfo& info) {
  static const char* const fn = "voleBobFinish";
  Napi::Env env = info.Env();
  size_t xi;
  if (!CheckArgCount(info, 5, fn) || !VoleOts(env, fn, &xi)) return env.Undefined();
  const uint8_t* padBytes;
  size_t padsLen;
  const uint8_t* choices;
  size_t choicesLen;
  const uint8_t* tauBytes;
  size_t tauLen;
  const uint8_t* etaBytes;
  size_t etaLen;
  const uint8_t* thetaBytes;
  size_t thetaLen;
  if (!GetBytes(info, 0, fn, "pads", &padBytes, &padsLen) ||
      !GetBytes(info, 1, fn, "choices", &choices, &choicesLen) ||
      !GetBytes(info, 2, fn, "tau", &tauBytes, &tauLen) ||
      !GetBytes(info, 3, fn, "eta", &etaBytes, &etaLen) ||
      !GetBytes(info, 4, fn, "thetas", &thetaBytes, &thetaLen)) {
    return env.Undefined();
  }
  const size_t count = thetaLen / (2 * kScalarBytes);
  if (count == 0 || count > kVoleMaxCount || thetaLen % (2 * kScalarBytes) != 0) {
    return ThrowTypeError(env, std::string(fn) + ": thetas must be 1 to " +
                                   std::to_string(kVoleMaxCount) + " pairs of scalars");
  }
  const size_t m = xi * count;
  const size_t vectorScalars = m * kVoleCorrelations;
  if (!CheckLength(env, fn, "pads", padsLen, vectorScalars * kScalarBytes) ||
      !CheckLength(env, fn, "choices", choicesLen, (m + 7) / 8) ||
      !CheckLength(env, fn, "tau", tauLen, vectorScalars * kScalarBytes) ||
      !CheckLength(env, fn, "eta", etaLen, count * kScalarBytes)) {
    return env.Undefined();
  }
  // The received scalars (public) are range-checked here, then read again by the arithmetic,
  // which checks them once more (folded into `canonical`): bytes changed in between through a
  // SharedArrayBuffer end in a TypeError, never in arithmetic on a value ≥ n.
  for (size_t b = 0; b < count; b++) {
    if (!IsCanonical(LoadScalarBe(etaBytes + b * kScalarBytes))) {  // public: a branch is fine
      Napi::Object bad = Napi::Object::New(env);
      bad.Set("badField", "eta");
      bad.Set("badIndex", static_cast<double>(b));
      return bad;
    }
    for (size_t i = b * xi * kVoleCorrelations; i < (b + 1) * xi * kVoleCorrelations; i++) {
      if (!IsCanonical(LoadScalarBe(tauBytes + i * kScalarBytes))) {
        Napi::Object bad = Napi::Object::New(env);
        bad.Set("badField", "tau");
        bad.Set("badIndex", static_cast<double>(i));
        return bad;
      }
    }
  }
  std::vector<Scalar> thetas;
  if (!LoadThetas(env, fn, thetaBytes, count, &thetas)) return env.Undefined();
  const VoleState& s = State(env)->vole;
  Napi::Uint8Array checkOut = Napi::Uint8Array::New(env, m * kScalarBytes);
  Napi::Uint8Array sharesOut = Napi::Uint8Array::New(env, 2 * count * kScalarBytes);
  uint8_t* check = checkOut.Data();
  uint8_t* shares = sharesOut.Data();
  Scalar o[kVoleCorrelations];
  WipeOnExit<Scalar[kVoleCorrelations]> wipeO(o);
  GadgetSum sum0(s), sum1(s);
  uint64_t canonical = 1;
  for (size_t b = 0; b < count; b++) {
    const Scalar& t0 = thetas[2 * b];
    const Scalar& t1 = thetas[2 * b + 1];
    const Scalar eta = LoadScalarBe(etaBytes + b * kScalarBytes);
    canonical &= IsCanonical(eta);
    sum0.Reset();
    sum1.Reset();
    for (size_t j = xi; j-- > 0;) {
      const size_t ot = b * xi + j;
      const uint64_t chosen = ChoiceMask(choices, ot);
      for (size_t k = 0; k < kVoleCorrelations; k++) {
        const size_t i = ot * kVoleCorrelations + k;
        const Scalar pad = LoadScalarBe(padBytes + i * kScalarBytes);
        const Scalar tau = LoadScalarBe(tauBytes + i * kScalarBytes);
        canonical &= IsCanonical(pad) & IsCanonical(tau);
        o[k] = AddMod(pad, AndMask(tau, chosen));
      }
      StoreScalarBe(check + ot * kScalarBytes,
                    SubMod(AddMod(o[2], Combine(t0, o[0], t1, o[1])), AndMask(eta, chosen)));
      sum0.Add(j, o[0]);
      sum1.Add(j, o[1]);
    }
    StoreScalarBe(shares + 2 * b * kScalarBytes, sum0.Result());
    StoreScalarBe(shares + (2 * b + 1) * kScalarBytes, sum1.Result());
  }
  if (!canonical) {
    OPENSSL_cleanse(shares, 2 * count * kScalarBytes);
    OPENSSL_cleanse(check, m * kScalarBytes);
    return ThrowTypeError(env, std::string(fn) +
                                   ": pads holds a value not below the group order, or tau or eta "
                                   "changed during the call");
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("check", checkOut);
  result.Set("shares", sharesOut);
  return result;
}

// ============================================================================================
// 7. OT-extension bit matrices
// ============================================================================================
//
// The two bit-matrix kernels of src/protocol/ot/bits.ts, on 64-bit words, with exactly the
// results of its TypeScript reference (test/native/ot-bits.test.ts). Every input and output is
// secret here except the challenge columns χ: only AND, XOR and constant shifts touch the
// secret words, every loop bound and memory index depends on the sizes alone, and the local
// copies are wiped. Layouts (little-endian 32-bit words, as the TypeScript side views them):
//   - a column of `words` 32-bit words; column i at word i·words. `words` may be odd, so a
//     column need not start on a 64-bit boundary: loads and stores go through memcpy.
//   - otColumnParities(columns, ncols, words, chi): Uint8Array(ncols·16). Bit c of column i's
//     128-bit value = ⟨column_i, chi_c⟩ over GF(2); it sits at byte i·16 + (c >> 3), bit c & 7.
//   - otTransposeToRows(cols, w, rowBlocks, out): rows 0 … 32·rowBlocks − 1 of the 128-column
//     matrix `cols` (w words per column) into `out`, row j at bytes [16j, 16j + 16), bit i of a
//     row = bit j of column i. Works on 64×64 blocks (two 32-row blocks at once; a last odd
//     32-row block is transposed zero-extended and only its 32 rows are stored).

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the OT bit-matrix kernels assume a little-endian platform (as src/protocol/ot/bits.ts does)"
#endif

constexpr size_t kOtColumns = 128;
constexpr size_t kOtMaxWords = size_t{1} << 26;  // 32-bit words per column (2^31 rows)

QK_INLINE uint64_t Load64Le(const uint8_t* p) {
  uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}
QK_INLINE uint32_t Load32Le(const uint8_t* p) {
  uint32_t x;
  std::memcpy(&x, p, 4);
  return x;
}

// Parity of a 64-bit word by folding (no table, no branch, no popcount fallback call).
QK_INLINE uint64_t Parity64(uint64_t x) {
  x ^= x >> 32;
  x ^= x >> 16;
  x ^= x >> 8;
  x ^= x >> 4;
  x ^= x >> 2;
  x ^= x >> 1;
  return x & 1;
}

// Copies `words` 32-bit words at p into 64-bit words (a last odd word zero-extended).
void LoadWords64(const uint8_t* p, size_t words, uint64_t* out) {
  const size_t full = words / 2;
  for (size_t k = 0; k < full; k++) out[k] = Load64Le(p + 8 * k);
  if (words & 1) out[full] = Load32Le(p + 8 * full);
}

// otColumnParities(columns: Uint8Array, ncols: number, words: number, chi: Uint8Array):
//   Uint8Array(ncols·16)
Napi::Value OtColumnParities(const Napi::CallbackInfo& info) {
  static const char* const fn = "otColumnParities";
  Napi::Env env = info.Env();
  if (!CheckArgCount(info, 4, fn)) return env.Undefined();
  const uint8_t* columns;
  size_t columnsLen;
  size_t ncols;
  size_t words;
  const uint8_t* chiBytes;
  size_t chiLen;
  if (!GetBytes(info, 0, fn, "columns", &columns, &columnsLen) ||
      !GetSize(info, 1, fn, "ncols", 0, kOtMaxWords, &ncols) ||
      !GetSize(info, 2, fn, "words", 1, kOtMaxWords, &words) ||
      !GetBytes(info, 3, fn, "chi", &chiBytes, &chiLen)) {
    return env.Undefined();
  }
  if (columnsLen / 4 / words < ncols || chiLen / 4 / words < kOtColumns) {
    return ThrowTypeError(env, std::string(fn) + ": buffers too short");
  }
  const size_t w64 = (words + 1) / 2;
  // χ (public) as 64-bit words, padded; the column being hashed, padded (secret, wiped).
  std::vector<uint64_t> chi(kOtColumns * w64, 0);
  for (size_t c = 0; c < kOtColumns; c++) LoadWords64(chiBytes + c * words * 4, words, &chi[c * w64]);
  SecretArray<uint64_t> col(w64);
  if (!col.ok()) return ThrowOutOfMemory(env, fn);
  Napi::Uint8Array out = Napi::Uint8Array::New(env, ncols * 16);
  uint8_t* dst = out.Data();
  uint64_t acc[8];
  WipeOnExit<uint64_t[8]> wipeAcc(acc);
  for (size_t i = 0; i < ncols; i++) {
    LoadWords64(columns + i * words * 4, words, col.data());
    uint64_t result[2] = {0, 0};
    for (size_t c0 = 0; c0 < kOtColumns; c0 += 8) {
      QK_UNROLL
      for (int t = 0; t < 8; t++) acc[t] = 0;
      const uint64_t* ch = &chi[c0 * w64];
      for (size_t k = 0; k < w64; k++) {
        const uint64_t x = col[k];
        QK_UNROLL
        for (int t = 0; t < 8; t++) acc[t] ^= x & ch[t * w64 + k];
      }
      QK_UNROLL
      for (int t = 0; t < 8; t++) result[c0 >> 6] |= Parity64(acc[t]) << ((c0 + t) & 63);
    }
    std::memcpy(dst + i * 16, result, 16);
    OPENSSL_cleanse(result, sizeof result);
  }
  return out;
}

// In-place transpose of a 64×64 bit matrix: afterwards bit c of a[r] is the old bit r of a[c].
void Transpose64(uint64_t a[64]) {
  uint64_t m = 0x00000000ffffffffULL;
  for (unsigned j = 32; j != 0; j >>= 1, m ^= m << j) {
    for (unsigned k = 0; k < 64; k = ((k | j) + 1) & ~j) {
      const uint64_t t = ((a[k] >> j) ^ a[k | j]) & m;
      a[k] ^= t << j;
      a[k | j] ^= t;
    }
  }
}

// otTransposeToRows(cols: Uint8Array(128·w·4), w: number, rowBlocks: number,
//                   out: Uint8Array(≥ rowBlocks·512)): undefined — writes `out` in place.
Napi::Value OtTransposeToRows(const Napi::CallbackInfo& info) {
  static const char* const fn = "otTransposeToRows";
  Napi::Env env = info.Env();
  if (!CheckArgCount(info, 4, fn)) return env.Undefined();
  const uint8_t* cols;
  size_t colsLen;
  size_t w;
  size_t rowBlocks;
  if (!GetBytes(info, 0, fn, "cols", &cols, &colsLen) ||
      !GetSize(info, 1, fn, "w", 1, kOtMaxWords, &w) ||
      !GetSize(info, 2, fn, "rowBlocks", 0, kOtMaxWords, &rowBlocks)) {
    return env.Undefined();
  }
  if (info[3].IsTypedArray() && info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return ThrowTypeError(env, std::string(fn) + ": out must be a Uint8Array");
  }
  uint8_t* out;
  size_t outLen;
  {
    const uint8_t* p;
    if (!GetBytes(info, 3, fn, "out", &p, &outLen)) return env.Undefined();
    out = const_cast<uint8_t*>(p);
  }
  if (rowBlocks > w || colsLen != kOtColumns * w * 4 || outLen / 512 < rowBlocks) {
    return ThrowTypeError(env, std::string(fn) + ": bad sizes");
  }
  uint64_t a[64];
  WipeOnExit<uint64_t[64]> wipeA(a);
  for (size_t rb = 0; rb < rowBlocks; rb += 2) {
    const bool pair = rb + 1 < rowBlocks;  // public: depends on the sizes only
    const size_t rows = pair ? 64 : 32;
    for (size_t half = 0; half < 2; half++) {
      for (size_t k = 0; k < 64; k++) {
        const uint8_t* p = cols + ((half * 64 + k) * w + rb) * 4;
        a[k] = pair ? Load64Le(p) : Load32Le(p);
      }
      Transpose64(a);
      for (size_t r = 0; r < rows; r++) std::memcpy(out + (rb * 32 + r) * 16 + half * 8, &a[r], 8);
    }
  }
  return env.Undefined();
}

// ============================================================================================
// 8. Secret scalar arithmetic (the surface of src/protocol/math/secret-scalar.ts)
// ============================================================================================
//
// Element-wise arithmetic mod n over 32-byte big-endian scalars, on the constant-time limbs of
// section 4, writing into a caller's buffer (so no intermediate secret is left in a JS
// allocation):
//   scalarAdd(out, a, b)        out = a + b
//   scalarSub(out, a, b)        out = a − b
//   scalarMul(out, a, b)        out = a · b
//   scalarMulAdd(out, a, b, c)  out = a · b + c
//   scalarFromWide(out, wide)   out = BigInt(wide[48i, 48i + 48)) mod n, exactly (a uniform
//                               48-byte string gives a scalar with bias < 2^-128; FIPS 186-5 A.2.1)
// `out` is 32·k bytes (k ≥ 1); every operand is 32·k bytes or 32 bytes (the same scalar for
// every element). Operands ≥ n are reduced first (constant time), as in section 3. All
// operands are read before `out` is written, element by element, and 32-byte operands once at
// the start, so `out` may be one of the operands. Nothing depends on a value: no branch, no
// index, no early exit.

constexpr size_t kScalarMaxCount = size_t{1} << 20;

struct ScalarOperand {
  const uint8_t* data;
  bool broadcast;
  Scalar fixed;  // the reduced value of a broadcast operand
};

// `out` (argument 0) and the operands (arguments 1 … count): on failure a TypeError is pending.
bool GetScalarOperands(const Napi::CallbackInfo& info, const char* fn, size_t operands,
                       uint8_t** out, size_t* k, ScalarOperand* ops, size_t unit = kScalarBytes) {
  Napi::Env env = info.Env();
  if (!CheckArgCount(info, 1 + operands, fn)) return false;
  const uint8_t* p;
  size_t outLen;
  if (!GetBytes(info, 0, fn, "out", &p, &outLen)) return false;
  *out = const_cast<uint8_t*>(p);
  *k = outLen / kScalarBytes;
  if (*k == 0 || *k > kScalarMaxCount || outLen % kScalarBytes != 0) {
    ThrowTypeError(env, std::string(fn) + ": out must be 1 to " + std::to_string(kScalarMaxCount) +
                            " scalars of 32 bytes");
    return false;
  }
  for (size_t i = 0; i < operands; i++) {
    size_t len;
    if (!GetBytes(info, 1 + i, fn, "operand", &ops[i].data, &len)) return false;
    ops[i].broadcast = unit == kScalarBytes && len == kScalarBytes;
    if (!ops[i].broadcast && len != *k * unit) {
      ThrowTypeError(env, std::string(fn) + ": operand " + std::to_string(i + 1) + " must be " +
                              std::to_string(unit) + " or " + std::to_string(*k * unit) +
                              " bytes, got " + std::to_string(len));
      return false;
    }
    ops[i].fixed = ops[i].broadcast ? Reduce256(LoadScalarBe(ops[i].data)) : kZero;
  }
  return true;
}

QK_INLINE Scalar OperandAt(const ScalarOperand& op, size_t i) {
  return op.broadcast ? op.fixed : Reduce256(LoadScalarBe(op.data + i * kScalarBytes));
}

QK_INLINE Scalar MulMod(const Scalar& a, const Scalar& b) { return MontMul(ToMont(a), b); }

enum class ScalarOp { kAdd, kSub, kMul, kMulAdd };

template <ScalarOp op>
Napi::Value ScalarElementwise(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Env env = info.Env();
  constexpr size_t operands = op == ScalarOp::kMulAdd ? 3 : 2;
  uint8_t* out;
  size_t k;
  ScalarOperand ops[3];
  WipeOnExit<ScalarOperand[3]> wipeOps(ops);
  if (!GetScalarOperands(info, fn, operands, &out, &k, ops)) return env.Undefined();
  Scalar x[3];
  Scalar r;
  WipeOnExit<Scalar[3]> wipeX(x);
  WipeOnExit<Scalar> wipeR(r);
  for (size_t i = 0; i < k; i++) {
    for (size_t j = 0; j < operands; j++) x[j] = OperandAt(ops[j], i);
    switch (op) {  // compile-time constant
      case ScalarOp::kAdd: r = AddMod(x[0], x[1]); break;
      case ScalarOp::kSub: r = SubMod(x[0], x[1]); break;
      case ScalarOp::kMul: r = MulMod(x[0], x[1]); break;
      case ScalarOp::kMulAdd: r = AddMod(MulMod(x[0], x[1]), x[2]); break;
    }
    StoreScalarBe(out + i * kScalarBytes, r);
  }
  return env.Undefined();
}

Napi::Value ScalarAdd(const Napi::CallbackInfo& info) { return ScalarElementwise<ScalarOp::kAdd>(info, "scalarAdd"); }
Napi::Value ScalarSub(const Napi::CallbackInfo& info) { return ScalarElementwise<ScalarOp::kSub>(info, "scalarSub"); }
Napi::Value ScalarMul(const Napi::CallbackInfo& info) { return ScalarElementwise<ScalarOp::kMul>(info, "scalarMul"); }
Napi::Value ScalarMulAdd(const Napi::CallbackInfo& info) { return ScalarElementwise<ScalarOp::kMulAdd>(info, "scalarMulAdd"); }

// scalarFromWide(out: Uint8Array(32·k), wide: Uint8Array(48·k)): undefined.
Napi::Value ScalarFromWide(const Napi::CallbackInfo& info) {
  static const char* const fn = "scalarFromWide";
  Napi::Env env = info.Env();
  uint8_t* out;
  size_t k;
  ScalarOperand ops[1];
  if (!GetScalarOperands(info, fn, 1, &out, &k, ops, kVoleWide)) return env.Undefined();
  Scalar r;
  WipeOnExit<Scalar> wipeR(r);
  for (size_t i = 0; i < k; i++) {
    r = ReduceWide48(ops[0].data + i * kVoleWide);
    StoreScalarBe(out + i * kScalarBytes, r);
  }
  return env.Undefined();
}

// ============================================================================================
// 9. Registration table and module initialisation
// ============================================================================================

struct Export {
  const char* name;
  Napi::Value (*fn)(const Napi::CallbackInfo&);
};

constexpr Export kExports[] = {
    // P-256 (section 3)
    {"p256MulBase", P256MulBase},
    {"p256Mul", P256Mul},
    {"p256Add", P256Add},
    {"p256IsValid", P256IsValid},
    // SHAKE256 rows for OT extension (section 5)
    {"otRowHash", OtRowHash},
    // VOLE (section 6)
    {"voleInit", VoleInit},
    {"voleBobExpand", VoleBobExpand},
    {"voleAliceCorrect", VoleAliceCorrect},
    {"voleAliceFinish", VoleAliceFinish},
    {"voleBobFinish", VoleBobFinish},
    // OT bit matrices (section 7)
    {"otColumnParities", OtColumnParities},
    {"otTransposeToRows", OtTransposeToRows},
    // Secret scalars (section 8)
    {"scalarAdd", ScalarAdd},
    {"scalarSub", ScalarSub},
    {"scalarMul", ScalarMul},
    {"scalarMulAdd", ScalarMulAdd},
    {"scalarFromWide", ScalarFromWide},
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ErrorQueueGuard errors;
  auto state = std::make_unique<AddonState>();
  if (!InitP256(state->p256)) {
    ThrowOpenSslError(env, "quorumkey_native", "P-256 initialisation");
    return exports;
  }
  if (!InitShake(state->shake)) {
    ThrowOpenSslError(env, "quorumkey_native", "SHAKE256 initialisation");
    return exports;
  }
  if (!ScalarSelfTest()) {
    Napi::Error::New(env, "quorumkey_native: scalar arithmetic self-test failed")
        .ThrowAsJavaScriptException();
    return exports;
  }
  env.SetInstanceData<AddonState>(state.release());  // freed by Node with the environment
  for (const Export& e : kExports) {
    exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
  }
  return exports;
}

}  // namespace

NODE_API_MODULE(quorumkey_native, Init)
