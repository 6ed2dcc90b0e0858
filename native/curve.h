// P-256 helpers shared by the kernels that work on points (curve.cc defines them).
#ifndef QUORUMKEY_NATIVE_CURVE_H_
#define QUORUMKEY_NATIVE_CURVE_H_

#include "common.h"

namespace qk {

constexpr size_t kP256PointBytes = 33;
constexpr size_t kP256ScalarBytes = 32;

// k mod n for a 256-bit big-endian k, in constant time.
void ReduceScalarModN(const uint8_t in[kP256ScalarBytes], uint8_t out[kP256ScalarBytes]);

// A secret scalar (32 bytes big-endian, reduced mod n) as a constant-time, secure-heap BIGNUM;
// null if OpenSSL fails.
SecretBnPtr SecretScalarBn(const uint8_t k[kP256ScalarBytes]);

// A canonical 33-byte compressed encoding (02/03 prefix, x < p, on the curve, not the identity)
// as a point; null for anything else. Never throws; OpenSSL errors stay behind the caller's
// ErrorQueueGuard.
EcPointPtr DecodeCompressed(const P256State& s, const uint8_t enc[kP256PointBytes]);

// Compressed SEC1, or 33 zero bytes for the identity; false if OpenSSL fails.
bool EncodeCompressed(const P256State& s, const EC_POINT* p, uint8_t out[kP256PointBytes]);

}  // namespace qk

#endif  // QUORUMKEY_NATIVE_CURVE_H_
