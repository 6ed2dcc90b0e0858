// RFC 9380 hash-to-curve for P-256, suite P256_XMD:SHA-256_SSWU_RO_: expand_message_xmd with
// SHA-256, hash_to_field into two elements mod p, the simplified SWU map of each (§6.6.2, with
// sqrt_ratio for p ≡ 3 mod 4, Appendix F.2.1.2), and their sum (the cofactor is 1). The base OT
// (base-ot.cc) hashes public points with it; p256HashToCurve exposes it to the tests, which
// check it against @noble/curves and the RFC's vectors (test/native/hash-to-curve.test.ts).
// Its inputs are public, but the map is straight-line code anyway: selections by mask, and
// exponentiations by fixed addition chains.

#include "hash-to-curve.h"

#include <openssl/sha.h>

#include "field.h"

namespace qk {
namespace {

constexpr size_t kFieldBytes = 48;           // L = ceil((256 + 128) / 8)
constexpr size_t kUniformBytes = 2 * kFieldBytes;
constexpr size_t kMaxDst = 255;

// The curve constant b.
constexpr Scalar kCurveB = {
    {0x3bce3c3e27d2604bULL, 0x651d06b0cc53b0f6ULL, 0xb3ebbd55769886bcULL, 0x5ac635d8aa3a93e7ULL}};

struct SswuConstants {
  Fe a, b, z, c2, one;  // A = −3, B, Z = −10, c2 = sqrt(−Z), 1 (Montgomery form)
};

Scalar Small(uint64_t x) { return Scalar{{x, 0, 0, 0}}; }

const SswuConstants& Constants() {
  static const SswuConstants c = [] {
    SswuConstants k;
    k.one = FeToMont(kOne);
    k.a = FeNeg(FeToMont(Small(3)));
    k.b = FeToMont(kCurveB);
    k.z = FeNeg(FeToMont(Small(10)));
    // sqrt(10) = 10^((p + 1) / 4) = 10^((p − 3) / 4)·10; any root serves (the map fixes the
    // sign of y by sgn0).
    const Fe ten = FeToMont(Small(10));
    k.c2 = FeMul(FePowSqrtRatio(ten), ten);
    return k;
  }();
  return c;
}

QK_INLINE Fe FeSelect(uint64_t bit, const Fe& ifOne, const Fe& ifZero) { return Select(MaskOf(bit), ifOne, ifZero); }
QK_INLINE uint64_t Sgn0(const Fe& a) { return FeFromMont(a).v[0] & 1; }

// (is u/v a square, sqrt(u/v) or sqrt(Z·u/v)) — F.2.1.2.
QK_INLINE Fe SqrtRatio(const Fe& u, const Fe& v, uint64_t* isQr) {
  const SswuConstants& k = Constants();
  Fe tv1 = FeSqr(v);
  const Fe tv2 = FeMul(u, v);
  tv1 = FeMul(tv1, tv2);
  Fe y1 = FePowSqrtRatio(tv1);
  y1 = FeMul(y1, tv2);
  const Fe y2 = FeMul(y1, k.c2);
  const Fe tv3 = FeMul(FeSqr(y1), v);
  *isQr = FeEqual(tv3, u);
  return FeSelect(*isQr, y1, y2);
}

// map_to_curve_simple_swu(u), §6.6.2 step by step, up to its last step x = x / tv4: returns
// that numerator x, the denominator tv4 (never zero: A·Z or A·(−tv2) with tv2 ≠ 0) and y,
// Montgomery form. HashToCurve divides both maps' x by one inversion.
void MapToCurve(const Fe& u, Fe* xOut, Fe* denominator, Fe* yOut) {
  const SswuConstants& k = Constants();
  Fe tv1 = FeMul(k.z, FeSqr(u));
  Fe tv2 = FeAdd(FeSqr(tv1), tv1);
  Fe tv3 = FeMul(k.b, FeAdd(tv2, k.one));
  Fe tv4 = FeMul(k.a, FeSelect(FeIsZero(tv2), k.z, FeNeg(tv2)));
  tv2 = FeSqr(tv3);
  Fe tv6 = FeSqr(tv4);
  Fe tv5 = FeMul(k.a, tv6);
  tv2 = FeMul(FeAdd(tv2, tv5), tv3);
  tv6 = FeMul(tv6, tv4);
  tv5 = FeMul(k.b, tv6);
  tv2 = FeAdd(tv2, tv5);
  Fe x = FeMul(tv1, tv3);
  uint64_t isGx1Square;
  const Fe y1 = SqrtRatio(tv2, tv6, &isGx1Square);
  Fe y = FeMul(FeMul(tv1, u), y1);
  x = FeSelect(isGx1Square, tv3, x);
  y = FeSelect(isGx1Square, y1, y);
  y = FeSelect(Sgn0(u) ^ Sgn0(y) ^ 1, y, FeNeg(y));
  *xOut = x;
  *denominator = tv4;
  *yOut = y;
}

// expand_message_xmd(msg, dst, 96) with SHA-256 (§5.3.1); false if OpenSSL fails.
bool ExpandMessageXmd(const uint8_t* msg, size_t msgLen, const uint8_t* dst, size_t dstLen,
                      uint8_t out[kUniformBytes]) {
  const uint8_t dstLenByte = static_cast<uint8_t>(dstLen);
  const uint8_t zPad[64] = {0};
  const uint8_t lenAndZero[3] = {0, kUniformBytes, 0};  // I2OSP(96, 2) ‖ I2OSP(0, 1)
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  const EVP_MD* sha256 = EVP_sha256();
  uint8_t b0[SHA256_DIGEST_LENGTH];
  bool ok = ctx && EVP_DigestInit_ex(ctx.get(), sha256, nullptr) == 1 &&
            EVP_DigestUpdate(ctx.get(), zPad, sizeof zPad) == 1 &&
            EVP_DigestUpdate(ctx.get(), msg, msgLen) == 1 &&
            EVP_DigestUpdate(ctx.get(), lenAndZero, sizeof lenAndZero) == 1 &&
            EVP_DigestUpdate(ctx.get(), dst, dstLen) == 1 &&
            EVP_DigestUpdate(ctx.get(), &dstLenByte, 1) == 1 &&
            EVP_DigestFinal_ex(ctx.get(), b0, nullptr) == 1;
  uint8_t chain[SHA256_DIGEST_LENGTH] = {0};  // b_{i−1}; zero before b_1, as strxor(b0, 0) = b0
  for (uint8_t i = 1; ok && i <= kUniformBytes / SHA256_DIGEST_LENGTH; i++) {
    uint8_t block[SHA256_DIGEST_LENGTH];
    for (size_t k = 0; k < sizeof block; k++) block[k] = b0[k] ^ chain[k];
    ok = EVP_DigestInit_ex(ctx.get(), sha256, nullptr) == 1 &&
         EVP_DigestUpdate(ctx.get(), block, sizeof block) == 1 &&
         EVP_DigestUpdate(ctx.get(), &i, 1) == 1 && EVP_DigestUpdate(ctx.get(), dst, dstLen) == 1 &&
         EVP_DigestUpdate(ctx.get(), &dstLenByte, 1) == 1 &&
         EVP_DigestFinal_ex(ctx.get(), chain, nullptr) == 1;
    std::memcpy(out + (i - 1) * SHA256_DIGEST_LENGTH, chain, SHA256_DIGEST_LENGTH);
  }
  return ok;
}

// An affine point (Montgomery-form coordinates) as an EC_POINT; OpenSSL checks it is on the curve.
bool ToEcPoint(const P256State& s, const Fe& x, const Fe& y, EC_POINT* out) {
  uint8_t bytes[2 * kScalarBytes];
  StoreScalarBe(bytes, FeFromMont(x));
  StoreScalarBe(bytes + kScalarBytes, FeFromMont(y));
  const std::unique_ptr<BIGNUM, void (*)(BIGNUM*)> bx(BN_bin2bn(bytes, kScalarBytes, nullptr), BN_free);
  const std::unique_ptr<BIGNUM, void (*)(BIGNUM*)> by(BN_bin2bn(bytes + kScalarBytes, kScalarBytes, nullptr), BN_free);
  return bx && by && EC_POINT_set_affine_coordinates(s.group.get(), out, bx.get(), by.get(), s.ctx.get()) == 1;
}

// p256HashToCurve(msg: Uint8Array, dst: Uint8Array(1…255)): Uint8Array(33).
Napi::Value P256HashToCurve(const Napi::CallbackInfo& info) {
  static const char* const fn = "p256HashToCurve";
  Napi::Env env = info.Env();
  ErrorQueueGuard errors;
  if (!CheckArgCount(info, 2, fn)) return env.Undefined();
  const uint8_t* msg;
  size_t msgLen;
  const uint8_t* dst;
  size_t dstLen;
  if (!GetBytes(info, 0, fn, "msg", &msg, &msgLen) || !GetBytes(info, 1, fn, "dst", &dst, &dstLen)) {
    return env.Undefined();
  }
  if (dstLen == 0 || dstLen > kMaxDst) return ThrowTypeError(env, std::string(fn) + ": dst must be 1 to 255 bytes");
  const P256State& s = State(env)->p256;
  EcPointPtr p(EC_POINT_new(s.group.get()));
  if (!p || !HashToCurve(s, msg, msgLen, dst, dstLen, p.get())) return ThrowOpenSslError(env, fn, "hash to curve");
  Napi::Uint8Array out = Napi::Uint8Array::New(env, kP256PointBytes);
  if (!EncodeCompressed(s, p.get(), out.Data())) return ThrowOpenSslError(env, fn, "EC_POINT_point2oct");
  return out;
}

}  // namespace

bool HashToCurve(const P256State& s, const uint8_t* msg, size_t msgLen, const uint8_t* dst,
                 size_t dstLen, EC_POINT* out) {
  if (dstLen == 0 || dstLen > kMaxDst) return false;
  uint8_t uniform[kUniformBytes];
  if (!ExpandMessageXmd(msg, msgLen, dst, dstLen, uniform)) return false;
  Fe x[2], d[2], y[2];
  for (int i = 0; i < 2; i++) {
    MapToCurve(FeToMont(FieldReduceWide48(uniform + i * kFieldBytes)), &x[i], &d[i], &y[i]);
  }
  const Fe inverse = FeInvert(FeMul(d[0], d[1]));  // 1 / (d0·d1)
  x[0] = FeMul(x[0], FeMul(d[1], inverse));
  x[1] = FeMul(x[1], FeMul(d[0], inverse));
  EcPointPtr q1(EC_POINT_new(s.group.get()));
  return q1 && ToEcPoint(s, x[0], y[0], out) && ToEcPoint(s, x[1], y[1], q1.get()) &&
         EC_POINT_add(s.group.get(), out, out, q1.get(), s.ctx.get()) == 1;
}

namespace {
constexpr KernelExport kExports[] = {
    {"p256HashToCurve", P256HashToCurve},
};
}  // namespace

const KernelTable kHashToCurveKernels = TableOf(kExports);

}  // namespace qk
