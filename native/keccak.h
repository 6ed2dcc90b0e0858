// SHAKE256 over many short inputs at once (the OT row hasher of ot.cc): Keccak-f[1600] on L
// independent states held lane-parallel in GCC/Clang vector types — 8 states in AVX-512
// registers, 4 in AVX2 registers, or 1 in plain 64-bit words — chosen at run time by what the
// CPU offers. Keccak has no data-dependent branch or table index, so every variant is constant
// time; only the sizes (public) steer the code. RowHashSelfTest (ot.cc) checks every variant
// the CPU can run against OpenSSL's SHAKE256 when the addon loads, and test/native/
// ot-hasher.test.ts checks the selected one against node:crypto.
#ifndef QUORUMKEY_NATIVE_KECCAK_H_
#define QUORUMKEY_NATIVE_KECCAK_H_

#include "common.h"

#include <type_traits>

// The vector types only ever live inside always-inlined code of a function compiled for their
// instruction set, so the psABI note about passing them between functions does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace qk {

constexpr size_t kShake256Rate = 136;  // bytes absorbed / squeezed per permutation
constexpr size_t kKeccakLanes = 25;

constexpr uint64_t kKeccakRoundConstants[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL};
// ρ offsets along the π walk that starts at lane 1, and the lanes of that walk.
constexpr int kKeccakRho[24] = {1,  3,  6,  10, 15, 21, 28, 36, 45, 55, 2,  14,
                                27, 41, 56, 8,  25, 43, 62, 18, 39, 61, 20, 44};
constexpr int kKeccakPi[24] = {10, 7,  11, 17, 18, 3, 5,  16, 8,  21, 24, 4,
                               15, 23, 19, 13, 12, 2, 20, 14, 22, 9,  6,  1};

template <typename V>
QK_INLINE V Rotl64(V x, int n) {
  return (x << n) | (x >> (64 - n));
}

// Keccak-f[1600] on every state of s (each element of V is one state's lane).
template <typename V>
QK_INLINE void KeccakF1600(V s[kKeccakLanes]) {
  for (int round = 0; round < 24; round++) {
    V c[5];
    QK_UNROLL
    for (int x = 0; x < 5; x++) c[x] = s[x] ^ s[x + 5] ^ s[x + 10] ^ s[x + 15] ^ s[x + 20];
    QK_UNROLL
    for (int x = 0; x < 5; x++) {
      const V d = c[(x + 4) % 5] ^ Rotl64(c[(x + 1) % 5], 1);
      QK_UNROLL
      for (int y = 0; y < 25; y += 5) s[y + x] ^= d;
    }
    V t = s[1];
    QK_UNROLL
    for (int i = 0; i < 24; i++) {
      const V b = s[kKeccakPi[i]];
      s[kKeccakPi[i]] = Rotl64(t, kKeccakRho[i]);
      t = b;
    }
    QK_UNROLL
    for (int y = 0; y < 25; y += 5) {
      const V b0 = s[y], b1 = s[y + 1], b2 = s[y + 2], b3 = s[y + 3], b4 = s[y + 4];
      s[y] = b0 ^ (~b1 & b2);
      s[y + 1] = b1 ^ (~b2 & b3);
      s[y + 2] = b2 ^ (~b3 & b4);
      s[y + 3] = b3 ^ (~b4 & b0);
      s[y + 4] = b4 ^ (~b0 & b1);
    }
    s[0] ^= kKeccakRoundConstants[round];
  }
}

// Lane l of a vector (or the word itself).
template <typename V>
QK_INLINE uint64_t LaneOf(const V& v, int l) {
  if constexpr (std::is_same_v<V, uint64_t>) {
    (void)l;
    return v;
  } else {
    return v[l];
  }
}
template <typename V>
QK_INLINE void XorLane(V& v, int l, uint64_t x) {
  if constexpr (std::is_same_v<V, uint64_t>) {
    (void)l;
    v ^= x;
  } else {
    v[l] ^= x;
  }
}

// The state after absorbing a prefix (not yet padded): lanes, and the offset into the block.
struct ShakePrefix {
  uint64_t lanes[kKeccakLanes];
  size_t pos;
};

// One call of the row hasher: output j < m is SHAKE256(prefix ‖ input_j) truncated to
// outputBytes, where input_j (kRowInputBytes) is produced by the caller's `input(j, buf)`.
constexpr size_t kRowInputBytes = 20;

template <typename Input>
struct RowHashJob {
  const ShakePrefix* prefix;
  Input input;  // void(size_t j, uint8_t out[kRowInputBytes])
  size_t m;
  size_t outputBytes;
  uint8_t* out;
};

// Rows in groups of L, one state per row. Wipes its states and buffers.
template <typename V, int L, typename Input>
QK_INLINE void HashRows(const RowHashJob<Input>& job) {
  V s[kKeccakLanes];
  uint8_t in[L][kRowInputBytes];
  uint64_t block[L][kShake256Rate / 8];
  const ShakePrefix& p = *job.prefix;
  for (size_t first = 0; first < job.m; first += L) {
    const int count = static_cast<int>(job.m - first < static_cast<size_t>(L) ? job.m - first : L);
    for (size_t i = 0; i < kKeccakLanes; i++) s[i] = V{} + p.lanes[i];
    for (int l = 0; l < L; l++) {
      if (l < count) {
        job.input(first + l, in[l]);
      } else {
        std::memset(in[l], 0, kRowInputBytes);  // an unused lane: hashed, never stored
      }
    }
    // Absorb the inputs byte by byte from the prefix's offset, permuting at each full block.
    size_t pos = p.pos;
    for (size_t k = 0; k < kRowInputBytes; k++) {
      if (pos == kShake256Rate) {
        KeccakF1600(s);
        pos = 0;
      }
      for (int l = 0; l < L; l++) XorLane(s[pos / 8], l, uint64_t{in[l][k]} << (8 * (pos % 8)));
      pos++;
    }
    if (pos == kShake256Rate) {
      KeccakF1600(s);
      pos = 0;
    }
    s[pos / 8] ^= uint64_t{0x1f} << (8 * (pos % 8));  // SHAKE domain bits and the first pad bit
    s[(kShake256Rate - 1) / 8] ^= uint64_t{0x80} << 56;
    for (size_t done = 0; done < job.outputBytes; done += kShake256Rate) {
      KeccakF1600(s);
      const size_t n = job.outputBytes - done < kShake256Rate ? job.outputBytes - done : kShake256Rate;
      for (int l = 0; l < L; l++) {
        for (size_t w = 0; w < kShake256Rate / 8; w++) block[l][w] = LaneOf(s[w], l);
      }
      for (int l = 0; l < count; l++) {
        std::memcpy(job.out + (first + l) * job.outputBytes + done, block[l], n);  // little-endian lanes
      }
    }
  }
  OPENSSL_cleanse(s, sizeof s);
  OPENSSL_cleanse(in, sizeof in);
  OPENSSL_cleanse(block, sizeof block);
}

// Absorbs a prefix of any length into a fresh SHAKE256 state.
inline void AbsorbPrefix(const uint8_t* data, size_t len, ShakePrefix* out) {
  std::memset(out->lanes, 0, sizeof out->lanes);
  size_t pos = 0;
  for (size_t i = 0; i < len; i++) {
    if (pos == kShake256Rate) {
      KeccakF1600(out->lanes);
      pos = 0;
    }
    out->lanes[pos / 8] ^= uint64_t{data[i]} << (8 * (pos % 8));
    pos++;
  }
  out->pos = pos;
}

}  // namespace qk

#endif  // QUORUMKEY_NATIVE_KECCAK_H_
