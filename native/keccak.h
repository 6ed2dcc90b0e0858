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
template <int n, typename V>
QK_INLINE V Rotl(V x) {
  if constexpr (n == 0) {
    return x;
  } else {
    return (x << n) | (x >> (64 - n));
  }
}

// Keccak-f[1600] on every state of s (each element of V is one state's lane), one round per
// iteration written out lane by lane (θ, then ρ and π into b, then χ and ι): every index and
// rotation is a constant, so the lanes stay in registers and rotations are immediate.
template <typename V>
QK_INLINE void KeccakF1600(V s[kKeccakLanes]) {
  for (int round = 0; round < 24; round++) {
    const V c0 = s[0] ^ s[5] ^ s[10] ^ s[15] ^ s[20];
    const V c1 = s[1] ^ s[6] ^ s[11] ^ s[16] ^ s[21];
    const V c2 = s[2] ^ s[7] ^ s[12] ^ s[17] ^ s[22];
    const V c3 = s[3] ^ s[8] ^ s[13] ^ s[18] ^ s[23];
    const V c4 = s[4] ^ s[9] ^ s[14] ^ s[19] ^ s[24];
    const V d0 = c4 ^ Rotl<1>(c1);
    const V d1 = c0 ^ Rotl<1>(c2);
    const V d2 = c1 ^ Rotl<1>(c3);
    const V d3 = c2 ^ Rotl<1>(c4);
    const V d4 = c3 ^ Rotl<1>(c0);
    const V b0 = Rotl<0>(s[0] ^ d0);
    const V b1 = Rotl<44>(s[6] ^ d1);
    const V b2 = Rotl<43>(s[12] ^ d2);
    const V b3 = Rotl<21>(s[18] ^ d3);
    const V b4 = Rotl<14>(s[24] ^ d4);
    const V b5 = Rotl<28>(s[3] ^ d3);
    const V b6 = Rotl<20>(s[9] ^ d4);
    const V b7 = Rotl<3>(s[10] ^ d0);
    const V b8 = Rotl<45>(s[16] ^ d1);
    const V b9 = Rotl<61>(s[22] ^ d2);
    const V b10 = Rotl<1>(s[1] ^ d1);
    const V b11 = Rotl<6>(s[7] ^ d2);
    const V b12 = Rotl<25>(s[13] ^ d3);
    const V b13 = Rotl<8>(s[19] ^ d4);
    const V b14 = Rotl<18>(s[20] ^ d0);
    const V b15 = Rotl<27>(s[4] ^ d4);
    const V b16 = Rotl<36>(s[5] ^ d0);
    const V b17 = Rotl<10>(s[11] ^ d1);
    const V b18 = Rotl<15>(s[17] ^ d2);
    const V b19 = Rotl<56>(s[23] ^ d3);
    const V b20 = Rotl<62>(s[2] ^ d2);
    const V b21 = Rotl<55>(s[8] ^ d3);
    const V b22 = Rotl<39>(s[14] ^ d4);
    const V b23 = Rotl<41>(s[15] ^ d0);
    const V b24 = Rotl<2>(s[21] ^ d1);
    s[0] = b0 ^ (~b1 & b2);
    s[1] = b1 ^ (~b2 & b3);
    s[2] = b2 ^ (~b3 & b4);
    s[3] = b3 ^ (~b4 & b0);
    s[4] = b4 ^ (~b0 & b1);
    s[5] = b5 ^ (~b6 & b7);
    s[6] = b6 ^ (~b7 & b8);
    s[7] = b7 ^ (~b8 & b9);
    s[8] = b8 ^ (~b9 & b5);
    s[9] = b9 ^ (~b5 & b6);
    s[10] = b10 ^ (~b11 & b12);
    s[11] = b11 ^ (~b12 & b13);
    s[12] = b12 ^ (~b13 & b14);
    s[13] = b13 ^ (~b14 & b10);
    s[14] = b14 ^ (~b10 & b11);
    s[15] = b15 ^ (~b16 & b17);
    s[16] = b16 ^ (~b17 & b18);
    s[17] = b17 ^ (~b18 & b19);
    s[18] = b18 ^ (~b19 & b15);
    s[19] = b19 ^ (~b15 & b16);
    s[20] = b20 ^ (~b21 & b22);
    s[21] = b21 ^ (~b22 & b23);
    s[22] = b22 ^ (~b23 & b24);
    s[23] = b23 ^ (~b24 & b20);
    s[24] = b24 ^ (~b20 & b21);
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
