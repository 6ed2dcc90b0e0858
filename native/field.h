// Arithmetic in the P-256 base field (mod p) on the 4-limb code of scalar.h, for hash-to-curve
// (hash-to-curve.cc). Field elements are kept in Montgomery form (a·2^256 mod p); the
// exponentiations are fixed addition chains.
#ifndef QUORUMKEY_NATIVE_FIELD_H_
#define QUORUMKEY_NATIVE_FIELD_H_

#include "scalar.h"

namespace qk {

// p = 2^256 − 2^224 + 2^192 + 2^96 − 1; p ≡ −1 mod 2^64, so −p^−1 mod 2^64 = 1.
struct FieldModulus {
  static constexpr Scalar m = {
      {0xffffffffffffffffULL, 0x00000000ffffffffULL, 0x0000000000000000ULL, 0xffffffff00000001ULL}};
  static constexpr uint64_t inv = 1;
  static constexpr Scalar r2 = {  // 2^512 mod p
      {0x0000000000000003ULL, 0xfffffffbffffffffULL, 0xfffffffffffffffeULL, 0x00000004fffffffdULL}};
};
static_assert(static_cast<uint64_t>(FieldModulus::m.v[0] * FieldModulus::inv) == ~uint64_t{0},
              "FieldModulus::inv must be -p^-1 mod 2^64");
// 2^384 mod p, for reducing 48-byte strings (hash_to_field).
constexpr Scalar kFieldTwo384 = {
    {0xfffffffefffffffeULL, 0x00000002ffffffffULL, 0x0000000000000002ULL, 0xfffffffe00000001ULL}};

using Fe = Scalar;  // a field element in Montgomery form

QK_INLINE Fe FeMul(const Fe& a, const Fe& b) { return MontMul<FieldModulus>(a, b); }
QK_INLINE Fe FeSqr(const Fe& a) { return MontMul<FieldModulus>(a, a); }
QK_INLINE Fe FeAdd(const Fe& a, const Fe& b) { return AddMod<FieldModulus>(a, b); }
QK_INLINE Fe FeSub(const Fe& a, const Fe& b) { return SubMod<FieldModulus>(a, b); }
QK_INLINE Fe FeNeg(const Fe& a) { return NegMod<FieldModulus>(a); }
QK_INLINE Fe FeToMont(const Scalar& a) { return ToMont<FieldModulus>(a); }
QK_INLINE Scalar FeFromMont(const Fe& a) { return MontMul<FieldModulus>(a, kOne); }
QK_INLINE uint64_t FeIsZero(const Fe& a) {
  const uint64_t x = a.v[0] | a.v[1] | a.v[2] | a.v[3];
  return ((x | (uint64_t{0} - x)) >> 63) ^ 1;
}
QK_INLINE uint64_t FeEqual(const Fe& a, const Fe& b) { return FeIsZero(FeSub(a, b)); }

// a^(2^n).
inline Fe FeSqrN(Fe a, int n) {
  for (int i = 0; i < n; i++) a = FeSqr(a);
  return a;
}

// a^(2^k − 1) for the k these exponents need, by the usual addition chain.
struct FeRuns {
  Fe x1, x2, x30, x32;
};
inline FeRuns FeRunsOf(const Fe& x) {
  const Fe x2 = FeMul(FeSqr(x), x);
  const Fe x3 = FeMul(FeSqr(x2), x);
  const Fe x6 = FeMul(FeSqrN(x3, 3), x3);
  const Fe x12 = FeMul(FeSqrN(x6, 6), x6);
  const Fe x15 = FeMul(FeSqrN(x12, 3), x3);
  const Fe x30 = FeMul(FeSqrN(x15, 15), x15);
  const Fe x32 = FeMul(FeSqrN(x30, 2), x2);
  return FeRuns{x, x2, x30, x32};
}

// a^(p − 2) = 1/a (0 for 0). p − 2 = ffffffff 00000001 0^96 ffffffff ffffffff fffffffd.
inline Fe FeInvert(const Fe& a) {
  const FeRuns r = FeRunsOf(a);
  Fe t = FeMul(FeSqrN(r.x32, 32), r.x1);
  t = FeSqrN(t, 96);
  t = FeMul(FeSqrN(t, 32), r.x32);
  t = FeMul(FeSqrN(t, 32), r.x32);
  t = FeMul(FeSqrN(t, 30), r.x30);
  return FeMul(FeSqrN(t, 2), r.x1);
}

// a^((p − 3) / 4), the exponent of sqrt_ratio: 1^32 0^31 1 0^96 1^94.
inline Fe FePowSqrtRatio(const Fe& a) {
  const FeRuns r = FeRunsOf(a);
  Fe t = FeMul(FeSqrN(r.x32, 32), r.x1);
  t = FeSqrN(t, 96);
  t = FeMul(FeSqrN(t, 32), r.x32);
  t = FeMul(FeSqrN(t, 32), r.x32);
  return FeMul(FeSqrN(t, 30), r.x30);
}

// OS2IP(48 bytes) mod p: hi·2^256 + lo with hi < 2^128, hi·2^256 ≡ (2^384 mod p)·hi·2^−128.
inline Scalar FieldReduceWide48(const uint8_t* p) {
  const Scalar hi = {{Load64Be(p + 8), Load64Be(p), 0, 0}};
  const Scalar lo = LoadScalarBe(p + 16);
  return AddMod<FieldModulus>(MontMulRounds<2, FieldModulus>(kFieldTwo384, hi),
                              Reduce256<FieldModulus>(lo));
}

}  // namespace qk

#endif  // QUORUMKEY_NATIVE_FIELD_H_
