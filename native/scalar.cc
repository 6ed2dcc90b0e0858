// Secret scalar arithmetic mod n for the protocol (src/protocol/math/secret-scalar.ts), and the
// load-time self-test of the constants of scalar.h.

#include "scalar.h"

namespace qk {
namespace {

//
// Element-wise arithmetic mod n over 32-byte big-endian scalars, on the constant-time limbs of
// scalar.h, writing into a caller's buffer (so no intermediate secret is left in a JS
// allocation):
//   scalarAdd(out, a, b)        out = a + b
//   scalarSub(out, a, b)        out = a − b
//   scalarMul(out, a, b)        out = a · b
//   scalarMulAdd(out, a, b, c)  out = a · b + c
//   scalarFromWide(out, wide)   out = BigInt(wide[48i, 48i + 48)) mod n, exactly (a uniform
//                               48-byte string gives a scalar with bias < 2^-128; FIPS 186-5 A.2.1)
// `out` is 32·k bytes (k ≥ 1); every operand is 32·k bytes or 32 bytes (the same scalar for
// every element). Operands ≥ n are reduced first (constant time), as curve.cc does. All
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
  if (!GetScalarOperands(info, fn, 1, &out, &k, ops, kWideBytes)) return env.Undefined();
  Scalar r;
  WipeOnExit<Scalar> wipeR(r);
  for (size_t i = 0; i < k; i++) {
    r = ReduceWide48(ops[0].data + i * kWideBytes);
    StoreScalarBe(out + i * kScalarBytes, r);
  }
  return env.Undefined();
}

// Load-time check of the constants against each other: with R = 2^256 − n,
// MontMul(R^2, 1) = R, MontMul(R, 1) = 1, two-round MontMul(2^384, 1) = R, and the reduction
// of R·R^2 as a Wide (= R^3, reduced to R^3·R^−1) equals R^2. Then known answers for
// ReduceWide's rare branches (random inputs reach them with probability about 2^−32), computed
// independently as acc·2^−256 mod n: the first folds a carry back in, the others end at or
// above n before the last subtraction.

}  // namespace

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

namespace {
constexpr KernelExport kExports[] = {
    {"scalarAdd", ScalarAdd},
    {"scalarSub", ScalarSub},
    {"scalarMul", ScalarMul},
    {"scalarMulAdd", ScalarMulAdd},
    {"scalarFromWide", ScalarFromWide},
};
}  // namespace

const KernelTable kScalarKernels = TableOf(kExports);

}  // namespace qk
