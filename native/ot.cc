// OT-extension kernels (src/protocol/ot/): SHAKE256 row hashing, the bit matrices of the
// consistency check and of the transposition into rows, and the PRG column expansion.

#include "keccak.h"

namespace qk {
namespace {

// SHAKE256 row hashing
// --------------------
//
// otRowHash(prefix, rows, m, outputBytes, mask?): Uint8Array(m·outputBytes) computes exactly
// OtRowHasher's function (src/protocol/ot/extension.ts): output j (j < m) is
// SHAKE256(prefix ‖ u32be(j) ‖ (row_j ⊕ mask)) truncated to outputBytes, with
// row_j = rows[16j, 16j + 16) and mask (Δ) 16 bytes, or absent (undefined / null). `rows` may be
// longer than 16·m bytes. The prefix is absorbed once; the rows are hashed 8, 4 or 1 at a time
// by the lane-parallel Keccak of keccak.h. Rows and outputs are secret: every state and buffer
// is wiped.

constexpr size_t kOtRowBytes = 16;
constexpr size_t kOtMaxRows = 0xffffffffu;         // j is written as a u32
constexpr size_t kOtMaxTotal = size_t{1} << 31;    // bytes of output per call

struct OtRowInput {
  const uint8_t* rows;
  uint8_t mask[kOtRowBytes];
  QK_INLINE void operator()(size_t j, uint8_t out[kRowInputBytes]) const {
    const uint32_t index = static_cast<uint32_t>(j);
    out[0] = static_cast<uint8_t>(index >> 24);
    out[1] = static_cast<uint8_t>(index >> 16);
    out[2] = static_cast<uint8_t>(index >> 8);
    out[3] = static_cast<uint8_t>(index);
    const uint8_t* row = rows + j * kOtRowBytes;
    for (size_t k = 0; k < kOtRowBytes; k++) out[4 + k] = row[k] ^ mask[k];
  }
};
using OtRowJob = RowHashJob<OtRowInput>;
using RowHasherFn = void (*)(const OtRowJob&);

void HashRowsWords(const OtRowJob& job) { HashRows<uint64_t, 1>(job); }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define QK_ROW_HASH_SIMD 1
using V4 = uint64_t __attribute__((vector_size(32)));
using V8 = uint64_t __attribute__((vector_size(64)));
__attribute__((target("avx2"))) void HashRowsAvx2(const OtRowJob& job) { HashRows<V4, 4>(job); }
__attribute__((target("avx512f"))) void HashRowsAvx512(const OtRowJob& job) { HashRows<V8, 8>(job); }
#endif

struct RowHasherVariant {
  const char* name;
  RowHasherFn fn;
  bool (*supported)();
};
const RowHasherVariant kRowHashers[] = {
#ifdef QK_ROW_HASH_SIMD
    {"avx512", HashRowsAvx512, [] { return __builtin_cpu_supports("avx512f") != 0; }},
    {"avx2", HashRowsAvx2, [] { return __builtin_cpu_supports("avx2") != 0; }},
#endif
    {"words", HashRowsWords, [] { return true; }},
};

// The fastest variant this CPU runs (the table is in order of preference).
const RowHasherVariant& SelectedRowHasher() {
  static const RowHasherVariant* const selected = [] {
    for (const RowHasherVariant& v : kRowHashers) {
      if (v.supported()) return &v;
    }
    return &kRowHashers[sizeof kRowHashers / sizeof kRowHashers[0] - 1];
  }();
  return *selected;
}

Napi::Value OtRowHash(const Napi::CallbackInfo& info) {
  static const char* const fn = "otRowHash";
  Napi::Env env = info.Env();
  if (info.Length() != 4 && info.Length() != 5) {
    return ThrowTypeError(env, std::string(fn) + ": expected 4 or 5 arguments, got " +
                                   std::to_string(info.Length()));
  }
  const uint8_t* prefix;
  size_t prefixLen;
  size_t rowsLen;
  size_t m;
  size_t outputBytes;
  OtRowInput input{};
  WipeOnExit<OtRowInput> wipeInput(input);
  if (!GetBytes(info, 0, fn, "prefix", &prefix, &prefixLen) ||
      !GetBytes(info, 1, fn, "rows", &input.rows, &rowsLen) ||
      !GetSize(info, 2, fn, "m", 0, kOtMaxRows, &m) ||
      !GetSize(info, 3, fn, "outputBytes", 0, kOtMaxTotal, &outputBytes)) {
    return env.Undefined();
  }
  if (info.Length() == 5 && !info[4].IsUndefined() && !info[4].IsNull()) {
    if (!CopyFixedBytes(info, 4, kOtRowBytes, fn, "mask", input.mask)) return env.Undefined();
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
  ShakePrefix absorbed;
  AbsorbPrefix(prefix, prefixLen, &absorbed);
  SelectedRowHasher().fn(OtRowJob{&absorbed, input, m, outputBytes, out.Data()});
  return out;
}

// otRowHashVariant(): string — which variant SelectedRowHasher runs ('avx512', 'avx2', 'words').
Napi::Value OtRowHashVariant(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), SelectedRowHasher().name);
}

// Bit matrices
// ------------
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

// Column expansion
// ----------------
//
// The PRG columns of the OT extension (src/protocol/ot/extension.ts): PRG(seed) is AES-256-CTR
// with a zero IV over zeros, keyed by SHA-256(prgDigest ‖ seed), colBytes long.
//   otReceiverColumns(prgDigest, seeds0: U8(128·32), seeds1: U8(128·32), b: U8(colBytes),
//                     t0: U8(128·colBytes), u: U8(128·colBytes)): undefined
//     t0_i = PRG(k_{i,0}), u_i = t0_i ⊕ PRG(k_{i,1}) ⊕ b, written into t0 and u.
//   otSenderColumns(prgDigest, seeds: U8(128·32), delta: U8(16), u: U8(128·colBytes),
//                   q: U8(128·colBytes)): undefined
//     q_i = PRG(s_i) ⊕ (Δ_i · u_i), Δ_i selecting by mask.
// Seeds, keys, b, Δ and the columns are secret: the keys and the local column are wiped.

constexpr size_t kOtSeedBytes = 32;
constexpr size_t kOtMaxColumnBytes = kOtMaxWords * 4;

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
struct CipherFree {
  void operator()(EVP_CIPHER* c) const { EVP_CIPHER_free(c); }
};

class ColumnPrg {
 public:
  ColumnPrg(const uint8_t* prgDigest, size_t colBytes)
      : prgDigest_(prgDigest), zeros_(colBytes, 0), cipher_(EVP_CIPHER_fetch(nullptr, "AES-256-CTR", nullptr)),
        ctx_(EVP_CIPHER_CTX_new()), md_(EVP_MD_CTX_new()), sha256_(EVP_MD_fetch(nullptr, "SHA256", nullptr)) {}
  bool ok() const { return cipher_ && ctx_ && md_ && sha256_; }

  // PRG(seed) into out (colBytes).
  bool Expand(const uint8_t* seed, uint8_t* out) {
    static const uint8_t kZeroIv[16] = {0};
    uint8_t key[32];
    unsigned keyLen = 0;
    int written = 0;
    const bool ok = EVP_DigestInit_ex(md_.get(), sha256_.get(), nullptr) == 1 &&
                    EVP_DigestUpdate(md_.get(), prgDigest_, 32) == 1 &&
                    EVP_DigestUpdate(md_.get(), seed, kOtSeedBytes) == 1 &&
                    EVP_DigestFinal_ex(md_.get(), key, &keyLen) == 1 &&
                    EVP_EncryptInit_ex(ctx_.get(), cipher_.get(), nullptr, key, kZeroIv) == 1 &&
                    EVP_EncryptUpdate(ctx_.get(), out, &written, zeros_.data(), static_cast<int>(zeros_.size())) == 1 &&
                    static_cast<size_t>(written) == zeros_.size();
    OPENSSL_cleanse(key, sizeof key);
    return ok;
  }
  ~ColumnPrg() {
    if (ctx_) EVP_CIPHER_CTX_reset(ctx_.get());  // wipes the key schedule
  }
  ColumnPrg(const ColumnPrg&) = delete;
  ColumnPrg& operator=(const ColumnPrg&) = delete;

 private:
  const uint8_t* prgDigest_;
  std::vector<uint8_t> zeros_;
  std::unique_ptr<EVP_CIPHER, CipherFree> cipher_;
  std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> ctx_;
  EvpMdCtxPtr md_;
  EvpMdPtr sha256_;
};

// The column length: a positive multiple of 16 bytes; on failure a TypeError is pending.
bool CheckColumnBytes(Napi::Env env, const char* fn, size_t colBytes) {
  if (colBytes != 0 && colBytes % 16 == 0 && colBytes <= kOtMaxColumnBytes) return true;
  ThrowTypeError(env, std::string(fn) + ": columns must be a positive multiple of 16 bytes");
  return false;
}

// An output argument of exactly `len` bytes, written in place; null with a TypeError pending.
uint8_t* WritableBytes(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what, size_t len) {
  const uint8_t* p;
  return GetFixedBytes(info, index, fn, what, len, &p) ? const_cast<uint8_t*>(p) : nullptr;
}

Napi::Value OtReceiverColumns(const Napi::CallbackInfo& info) {
  static const char* const fn = "otReceiverColumns";
  Napi::Env env = info.Env();
  ErrorQueueGuard errors;
  if (!CheckArgCount(info, 6, fn)) return env.Undefined();
  const uint8_t *prgDigest, *seeds0, *seeds1, *b;
  size_t colBytes;
  if (!GetFixedBytes(info, 0, fn, "prgDigest", 32, &prgDigest) ||
      !GetFixedBytes(info, 1, fn, "seeds0", kOtColumns * kOtSeedBytes, &seeds0) ||
      !GetFixedBytes(info, 2, fn, "seeds1", kOtColumns * kOtSeedBytes, &seeds1) ||
      !GetBytes(info, 3, fn, "b", &b, &colBytes) || !CheckColumnBytes(env, fn, colBytes)) {
    return env.Undefined();
  }
  uint8_t* t0 = WritableBytes(info, 4, fn, "t0", kOtColumns * colBytes);
  uint8_t* u = t0 ? WritableBytes(info, 5, fn, "u", kOtColumns * colBytes) : nullptr;
  if (!u) return env.Undefined();
  ColumnPrg prg(prgDigest, colBytes);
  SecretArray<uint8_t> t1(colBytes);
  if (!prg.ok() || !t1.ok()) return ThrowOpenSslError(env, fn, "AES-256-CTR / SHA-256 set-up");
  for (size_t i = 0; i < kOtColumns; i++) {
    uint8_t* t0i = t0 + i * colBytes;
    uint8_t* ui = u + i * colBytes;
    if (!prg.Expand(seeds0 + i * kOtSeedBytes, t0i) || !prg.Expand(seeds1 + i * kOtSeedBytes, t1.data())) {
      OPENSSL_cleanse(t0, kOtColumns * colBytes);
      return ThrowOpenSslError(env, fn, "PRG");
    }
    for (size_t k = 0; k < colBytes; k++) ui[k] = static_cast<uint8_t>(t0i[k] ^ t1[k] ^ b[k]);
  }
  return env.Undefined();
}

Napi::Value OtSenderColumns(const Napi::CallbackInfo& info) {
  static const char* const fn = "otSenderColumns";
  Napi::Env env = info.Env();
  ErrorQueueGuard errors;
  if (!CheckArgCount(info, 5, fn)) return env.Undefined();
  const uint8_t *prgDigest, *seeds, *delta, *u;
  size_t uBytes;
  if (!GetFixedBytes(info, 0, fn, "prgDigest", 32, &prgDigest) ||
      !GetFixedBytes(info, 1, fn, "seeds", kOtColumns * kOtSeedBytes, &seeds) ||
      !GetFixedBytes(info, 2, fn, "delta", kOtColumns / 8, &delta) ||
      !GetBytes(info, 3, fn, "u", &u, &uBytes) ||
      !CheckColumnBytes(env, fn, uBytes % kOtColumns == 0 ? uBytes / kOtColumns : 0)) {
    return env.Undefined();
  }
  const size_t colBytes = uBytes / kOtColumns;
  uint8_t* q = WritableBytes(info, 4, fn, "q", kOtColumns * colBytes);
  if (!q) return env.Undefined();
  ColumnPrg prg(prgDigest, colBytes);
  if (!prg.ok()) return ThrowOpenSslError(env, fn, "AES-256-CTR / SHA-256 set-up");
  for (size_t i = 0; i < kOtColumns; i++) {
    uint8_t* qi = q + i * colBytes;
    const uint8_t* ui = u + i * colBytes;
    if (!prg.Expand(seeds + i * kOtSeedBytes, qi)) {
      OPENSSL_cleanse(q, kOtColumns * colBytes);
      return ThrowOpenSslError(env, fn, "PRG");
    }
    const uint8_t mask = static_cast<uint8_t>(0u - ((delta[i >> 3] >> (i & 7)) & 1u));
    for (size_t k = 0; k < colBytes; k++) qi[k] = static_cast<uint8_t>(qi[k] ^ (ui[k] & mask));
  }
  return env.Undefined();
}

}  // namespace

// Every variant this CPU runs against OpenSSL's SHAKE256 on inputs that cross block boundaries
// at every stage (prefix, row input, padding, output).
bool RowHashSelfTest() {
  EvpMdPtr md(EVP_MD_fetch(nullptr, "SHAKE256", nullptr));
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!md || !ctx) return false;
  constexpr size_t kRows = 9;
  uint8_t data[300 + kRows * kOtRowBytes];
  for (size_t i = 0; i < sizeof data; i++) data[i] = static_cast<uint8_t>(i * 131 + 7);
  OtRowInput input{data + 300, {}};
  for (size_t k = 0; k < kOtRowBytes; k++) input.mask[k] = static_cast<uint8_t>(k * 29 + 1);
  std::vector<uint8_t> got(kRows * 300), want(300);
  uint8_t row[kRowInputBytes];
  for (const size_t prefixLen : {size_t{0}, size_t{32}, size_t{116}, size_t{117}, size_t{135}, size_t{136}, size_t{300}}) {
    for (const size_t outputBytes : {size_t{1}, size_t{136}, size_t{144}, size_t{300}}) {
      ShakePrefix absorbed;
      AbsorbPrefix(data, prefixLen, &absorbed);
      for (const RowHasherVariant& v : kRowHashers) {
        if (!v.supported()) continue;
        v.fn(OtRowJob{&absorbed, input, kRows, outputBytes, got.data()});
        for (size_t j = 0; j < kRows; j++) {
          input(j, row);
          if (EVP_DigestInit_ex(ctx.get(), md.get(), nullptr) != 1 ||
              EVP_DigestUpdate(ctx.get(), data, prefixLen) != 1 ||
              EVP_DigestUpdate(ctx.get(), row, sizeof row) != 1 ||
              EVP_DigestFinalXOF(ctx.get(), want.data(), outputBytes) != 1 ||
              std::memcmp(want.data(), got.data() + j * outputBytes, outputBytes) != 0) {
            return false;
          }
        }
      }
    }
  }
  return true;
}

namespace {
constexpr KernelExport kExports[] = {
    {"otRowHash", OtRowHash},
    {"otRowHashVariant", OtRowHashVariant},
    {"otColumnParities", OtColumnParities},
    {"otTransposeToRows", OtTransposeToRows},
    {"otReceiverColumns", OtReceiverColumns},
    {"otSenderColumns", OtSenderColumns},
};
}  // namespace

const KernelTable kOtKernels = TableOf(kExports);

}  // namespace qk
