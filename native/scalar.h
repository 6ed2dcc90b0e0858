// Scalar arithmetic mod n (the P-256 group order), inline, for the bulk kernels (scalar.cc,
// vole.cc). ScalarSelfTest (scalar.cc) checks the constants when the addon loads.
#ifndef QUORUMKEY_NATIVE_SCALAR_H_
#define QUORUMKEY_NATIVE_SCALAR_H_

#include "common.h"

#if defined(__x86_64__)
#include <x86intrin.h>  // _addcarry_u64, _subborrow_u64
#endif

namespace qk {

constexpr size_t kScalarBytes = 32;
constexpr size_t kWideBytes = 48;  // a uniform 48-byte string reduces to a scalar with bias < 2^-128

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

// A modulus of this arithmetic: odd, between 2^255 and 2^256 (so every 256-bit value is below
// 2m and one conditional subtraction reduces it), with inv = −m^−1 mod 2^64 and r2 = 2^512 mod m.
// The functions below take it as a template argument; n (OrderModulus) unless they say
// otherwise. field.h adds the P-256 field prime.
struct OrderModulus {
  static constexpr Scalar m = kOrder;
  static constexpr uint64_t inv = kOrderInv;
  static constexpr Scalar r2 = kR2;
};

// out = a − m mod 2^256; returns the borrow, 1 iff a < m.
template <typename M = OrderModulus>
QK_INLINE uint64_t SubModulus(uint64_t out[4], const uint64_t a[4]) {
  unsigned char borrow = 0;
  QK_UNROLL
  for (int i = 0; i < 4; i++) out[i] = SubBorrow(a[i], M::m.v[i], borrow);
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

// 1 iff a < m.
template <typename M = OrderModulus>
QK_INLINE uint64_t IsCanonical(const Scalar& a) {
  uint64_t d[4];
  return SubModulus<M>(d, a.v);
}

// a mod m for any a < 2^256 (< 2m, so one conditional subtraction).
template <typename M = OrderModulus>
QK_INLINE Scalar Reduce256(const Scalar& a) {
  Scalar d;
  const uint64_t borrow = SubModulus<M>(d.v, a.v);
  return Select(MaskOf(borrow), a, d);
}

template <typename M = OrderModulus>
QK_INLINE Scalar AddMod(const Scalar& a, const Scalar& b) {
  Scalar s;
  unsigned char carry = 0;
  QK_UNROLL
  for (int i = 0; i < 4; i++) s.v[i] = AddCarry(a.v[i], b.v[i], carry);
  Scalar d;
  const uint64_t borrow = SubModulus<M>(d.v, s.v);
  // a + b ≥ m  ⟺  the sum overflowed 2^256, or its low 256 bits are ≥ n.
  return Select(MaskOf(carry | (borrow ^ 1)), d, s);
}

template <typename M = OrderModulus>
QK_INLINE Scalar SubMod(const Scalar& a, const Scalar& b) {
  Scalar d;
  unsigned char borrow = 0;
  QK_UNROLL
  for (int i = 0; i < 4; i++) d.v[i] = SubBorrow(a.v[i], b.v[i], borrow);
  const uint64_t mask = MaskOf(borrow);  // a < b: add m back
  unsigned char carry = 0;
  QK_UNROLL
  for (int i = 0; i < 4; i++) d.v[i] = AddCarry(d.v[i], M::m.v[i] & mask, carry);
  return d;
}

template <typename M = OrderModulus>
QK_INLINE Scalar NegMod(const Scalar& a) { return SubMod<M>(kZero, a); }

// a·b·2^(−64·rounds) mod n by CIOS Montgomery multiplication over the first `rounds` limbs of b,
// for a < n and b < 2^(64·rounds) (b < n when rounds = 4): the result before the final
// subtraction is below (n·2^(64·rounds) + 2^(64·rounds)·n) / 2^(64·rounds) = 2n.
template <int rounds, typename M = OrderModulus>
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
    const uint64_t q = t0 * M::inv;
    c = 0;
    (void)MulAdd(q, M::m.v[0], t0, c);  // low word is zero by the choice of q
    t0 = MulAdd(q, M::m.v[1], t1, c);
    t1 = MulAdd(q, M::m.v[2], t2, c);
    t2 = MulAdd(q, M::m.v[3], t3, c);
    k = 0;
    t3 = AddCarry(t4, c, k);
    t4 = t5 + k;
  }
  // t < 2n: subtract n once if t ≥ n (t4 is 0 or 1).
  const Scalar lo = {{t0, t1, t2, t3}};
  Scalar d;
  const uint64_t borrow = SubModulus<M>(d.v, lo.v);
  return Select(MaskOf(t4 | (borrow ^ 1)), d, lo);
}

// a·b·2^−256 mod m for a, b < m.
template <typename M = OrderModulus>
inline Scalar MontMul(const Scalar& a, const Scalar& b) { return MontMulRounds<4, M>(a, b); }

template <typename M = OrderModulus>
inline Scalar ToMont(const Scalar& a) { return MontMul<M>(a, M::r2); }

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

}  // namespace qk

#endif  // QUORUMKEY_NATIVE_SCALAR_H_
