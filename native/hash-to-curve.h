// RFC 9380 P256_XMD:SHA-256_SSWU_RO_ (hash-to-curve.cc).
#ifndef QUORUMKEY_NATIVE_HASH_TO_CURVE_H_
#define QUORUMKEY_NATIVE_HASH_TO_CURVE_H_

#include "curve.h"

namespace qk {

// hash_to_curve(msg) under the domain separation tag dst (1 to 255 bytes) into `out`; false if
// the tag's length is out of range or OpenSSL fails.
bool HashToCurve(const P256State& s, const uint8_t* msg, size_t msgLen, const uint8_t* dst,
                 size_t dstLen, EC_POINT* out);

}  // namespace qk

#endif  // QUORUMKEY_NATIVE_HASH_TO_CURVE_H_
