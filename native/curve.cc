// P-256 group operations on 33-byte SEC1 compressed points (src/protocol/math/curve.ts),
// through OpenSSL's constant-time EC_POINT_mul for secret scalars.

#include "curve.h"

namespace qk {

// Group order n, big-endian.
constexpr uint8_t kP256Order[kP256ScalarBytes] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};

// Since k < 2^256 < 2n, one conditional subtraction suffices, selected by mask on the final
// borrow.
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

SecretBnPtr SecretScalarBn(const uint8_t k[kP256ScalarBytes]) {
  SecretBytes<kP256ScalarBytes> reduced;
  ReduceScalarModN(k, reduced.b);
  SecretBnPtr bn(BN_secure_new());
  if (!bn) return nullptr;
  BN_set_flags(bn.get(), BN_FLG_CONSTTIME);
  if (BN_bin2bn(reduced.b, kP256ScalarBytes, bn.get()) == nullptr) return nullptr;
  return bn;
}

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

bool EncodeCompressed(const P256State& s, const EC_POINT* p, uint8_t out[kP256PointBytes]) {
  if (EC_POINT_is_at_infinity(s.group.get(), p)) {
    std::memset(out, 0, kP256PointBytes);
    return true;
  }
  return EC_POINT_point2oct(s.group.get(), p, POINT_CONVERSION_COMPRESSED, out, kP256PointBytes,
                            s.ctx.get()) == kP256PointBytes;
}

namespace {

// Reads argument `index` as a secret scalar (32 bytes, reduced mod n) into a constant-time,
// secure-heap BIGNUM. Returns null with a pending exception on failure.
SecretBnPtr ReadScalar(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  SecretBytes<kP256ScalarBytes> raw;
  if (!CopyFixedBytes(info, index, kP256ScalarBytes, fn, "scalar", raw.b)) return nullptr;
  SecretBnPtr k = SecretScalarBn(raw.b);
  if (!k) ThrowOpenSslError(info.Env(), fn, "BN_secure_new / BN_bin2bn");
  return k;
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
  if (!EncodeCompressed(s, p, out.Data())) return ThrowOpenSslError(env, fn, "EC_POINT_point2oct");
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

}  // namespace

bool InitP256(P256State& s) {
  s.group.reset(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  s.ctx.reset(BN_CTX_secure_new());
  return s.group && s.ctx;
}

namespace {
constexpr KernelExport kExports[] = {
    {"p256MulBase", P256MulBase},
    {"p256Mul", P256Mul},
    {"p256Add", P256Add},
    {"p256IsValid", P256IsValid},
};
}  // namespace

const KernelTable kCurveKernels = TableOf(kExports);

}  // namespace qk
