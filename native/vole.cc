// VOLE kernels: the scalar arithmetic of src/protocol/vole.ts.

#include "scalar.h"

namespace qk {
namespace {

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
// Unlike curve.cc and scalar.cc, these kernels do not reduce: values the TypeScript side computes (gadget,
// alpha, θ) and the intermediate vectors it keeps (Bob's pads, Alice's own shares) must be
// canonical (< n), else TypeError. Scalars received from the peer (τ, η) are range-checked here,
// in the order the reference decodes them (η_b, then τ of instance b, for b = 0, 1, …); the
// first one ≥ n is reported as { badField, badIndex } (its index in that field) and the
// TypeScript side raises the ProtocolAbort, exactly as decodeScalar would. Everything derived
// from the OT outputs, from alpha and from β is secret: β selects by mask.

constexpr size_t kVoleCorrelations = 3;
constexpr size_t kVoleWide = kWideBytes;
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

}  // namespace

namespace {
constexpr KernelExport kExports[] = {
    {"voleInit", VoleInit},
    {"voleBobExpand", VoleBobExpand},
    {"voleAliceCorrect", VoleAliceCorrect},
    {"voleAliceFinish", VoleAliceFinish},
    {"voleBobFinish", VoleBobFinish},
};
}  // namespace

const KernelTable kVoleKernels = TableOf(kExports);

}  // namespace qk
