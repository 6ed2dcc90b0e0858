// Base OT kernels: the three steps of the endemic OT of src/protocol/ot/base-ot.ts (see that
// file for the protocol), κ = 128 instances per call, with byte-for-byte its results
// (test/native/base-ot.test.ts). Points stay OpenSSL EC_POINTs between operations instead of
// being encoded and decoded around every one; hash-to-curve is hash-to-curve.cc.
//
// Secret here: the receiver's choice bits (Δ of the OT extension) and scalars sk_i, the
// sender's scalars a_i, the shared points and the keys. Scalars go to OpenSSL's constant-time
// EC_POINT_mul in secure, BN_FLG_CONSTTIME bignums; the choice bits select the receiver's
// message slots and key input by mask; shared points and key inputs are wiped.
//
// The key derivation K(i, b, r0, r1, z, shared) is taggedHash(KEY_DOMAIN, …) of
// src/protocol/transcript.ts: SHA-512 (first 32 bytes) over items label-length ‖ label ‖
// value-length ‖ value (32-bit big-endian lengths). The TypeScript side passes the encoding of
// the leading items (protocol tag, domain, ctx) as `keyPrefix`; the items after it are
// appended here.
//
// Received points that are not valid compressed encodings are reported as { badIndex } (their
// index in the message, in order); the TypeScript side raises the ProtocolAbort naming them.

#include <openssl/sha.h>

#include "hash-to-curve.h"

namespace qk {
namespace {

constexpr size_t kBaseOtCount = 128;
constexpr size_t kKeyBytes = 32;
constexpr size_t kContextBytes = 32;
constexpr size_t kMaxDst = 255;
constexpr size_t kHashInputBytes = kContextBytes + 4 + kP256PointBytes;  // ctx ‖ u32be(i) ‖ r

struct BaseOtInputs {
  const uint8_t* context;  // ctxDigest, 32 bytes
  const uint8_t* dst;      // hash-to-curve domain tag
  size_t dstLen;
};

void PutU32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// H(ctx, i, r): hash-to-curve of ctxDigest ‖ u32be(i) ‖ r.
bool HashPoint(const P256State& s, const BaseOtInputs& in, size_t i, const uint8_t r[kP256PointBytes],
               EC_POINT* out) {
  uint8_t msg[kHashInputBytes];
  std::memcpy(msg, in.context, kContextBytes);
  PutU32(msg + kContextBytes, static_cast<uint32_t>(i));
  std::memcpy(msg + kContextBytes + 4, r, kP256PointBytes);
  return HashToCurve(s, msg, sizeof msg, in.dst, in.dstLen, out);
}

bool DigestItem(EVP_MD_CTX* ctx, const char* label, const uint8_t* value, size_t len) {
  uint8_t lengths[8];
  const size_t labelLen = std::strlen(label);
  PutU32(lengths, static_cast<uint32_t>(labelLen));
  PutU32(lengths + 4, static_cast<uint32_t>(len));
  return EVP_DigestUpdate(ctx, lengths, 4) == 1 && EVP_DigestUpdate(ctx, label, labelLen) == 1 &&
         EVP_DigestUpdate(ctx, lengths + 4, 4) == 1 && EVP_DigestUpdate(ctx, value, len) == 1;
}

// K(i, b, r0, r1, z, shared) into out (32 bytes); b is secret for the receiver (hashed, never
// branched on).
bool DeriveKey(EVP_MD_CTX* ctx, const uint8_t* keyPrefix, size_t keyPrefixLen, size_t i, uint32_t b,
               const uint8_t* r0, const uint8_t* r1, const uint8_t* z, const uint8_t* shared,
               uint8_t out[kKeyBytes]) {
  uint8_t index[4], bit[4];
  PutU32(index, static_cast<uint32_t>(i));
  PutU32(bit, b);
  uint8_t digest[SHA512_DIGEST_LENGTH];
  const bool ok = EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, keyPrefix, keyPrefixLen) == 1 &&
                  DigestItem(ctx, "index", index, 4) && DigestItem(ctx, "bit", bit, 4) &&
                  DigestItem(ctx, "r0", r0, kP256PointBytes) && DigestItem(ctx, "r1", r1, kP256PointBytes) &&
                  DigestItem(ctx, "z", z, kP256PointBytes) && DigestItem(ctx, "shared", shared, kP256PointBytes) &&
                  EVP_DigestFinal_ex(ctx, digest, nullptr) == 1;
  std::memcpy(out, digest, kKeyBytes);
  OPENSSL_cleanse(digest, sizeof digest);
  OPENSSL_cleanse(bit, sizeof bit);
  return ok;
}

// Reads the context digest and the hash-to-curve tag (arguments 0 and 1).
bool GetBaseOtInputs(const Napi::CallbackInfo& info, const char* fn, BaseOtInputs* in) {
  size_t contextLen;
  if (!GetBytes(info, 0, fn, "context", &in->context, &contextLen) ||
      !CheckLength(info.Env(), fn, "context", contextLen, kContextBytes) ||
      !GetBytes(info, 1, fn, "dst", &in->dst, &in->dstLen)) {
    return false;
  }
  if (in->dstLen == 0 || in->dstLen > kMaxDst) {
    ThrowTypeError(info.Env(), std::string(fn) + ": dst must be 1 to 255 bytes");
    return false;
  }
  return true;
}

QK_INLINE uint8_t ChoiceByteMask(const uint8_t* choices, size_t i) {
  return static_cast<uint8_t>(0u - ((choices[i >> 3] >> (i & 7)) & 1u));
}

Napi::Value BadIndex(Napi::Env env, size_t index) {
  Napi::Object bad = Napi::Object::New(env);
  bad.Set("badIndex", static_cast<double>(index));
  return bad;
}

// Decodes `count` received points; the index of the first invalid one in *bad (else count).
bool DecodeAll(const P256State& s, const uint8_t* bytes, size_t count, std::vector<EcPointPtr>* out, size_t* bad) {
  out->clear();
  for (size_t k = 0; k < count; k++) {
    EcPointPtr p = DecodeCompressed(s, bytes + k * kP256PointBytes);
    if (!p) {
      *bad = k;
      return false;
    }
    out->push_back(std::move(p));
  }
  *bad = count;
  return true;
}

// baseOtReceiverStart(context: U8(32), dst: U8, choices: U8(16), secrets: U8(128·32),
//                     others: U8(128·32)): Uint8Array(128·66)
// Slot c_i of pair i is sk_i·G − H(i, O_i), slot 1 − c_i is O_i = other_i·G.
Napi::Value BaseOtReceiverStart(const Napi::CallbackInfo& info) {
  static const char* const fn = "baseOtReceiverStart";
  Napi::Env env = info.Env();
  ErrorQueueGuard errors;
  BaseOtInputs in;
  const uint8_t* choices;
  const uint8_t* secrets;
  const uint8_t* others;
  if (!CheckArgCount(info, 5, fn) || !GetBaseOtInputs(info, fn, &in) ||
      !GetFixedBytes(info, 2, fn, "choices", kBaseOtCount / 8, &choices) ||
      !GetFixedBytes(info, 3, fn, "secrets", kBaseOtCount * kP256ScalarBytes, &secrets) ||
      !GetFixedBytes(info, 4, fn, "others", kBaseOtCount * kP256ScalarBytes, &others)) {
    return env.Undefined();
  }
  const P256State& s = State(env)->p256;
  Napi::Uint8Array out = Napi::Uint8Array::New(env, kBaseOtCount * 2 * kP256PointBytes);
  EcPointPtr o(EC_POINT_new(s.group.get())), h(EC_POINT_new(s.group.get())), mine(EC_POINT_new(s.group.get()));
  if (!o || !h || !mine) return ThrowOpenSslError(env, fn, "EC_POINT_new");
  SecretBytes<kP256PointBytes> encMine;
  uint8_t encOther[kP256PointBytes];
  for (size_t i = 0; i < kBaseOtCount; i++) {
    SecretBnPtr sk = SecretScalarBn(secrets + i * kP256ScalarBytes);
    SecretBnPtr other = SecretScalarBn(others + i * kP256ScalarBytes);
    if (!sk || !other || EC_POINT_mul(s.group.get(), o.get(), other.get(), nullptr, nullptr, s.ctx.get()) != 1 ||
        !EncodeCompressed(s, o.get(), encOther) || !HashPoint(s, in, i, encOther, h.get()) ||
        EC_POINT_invert(s.group.get(), h.get(), s.ctx.get()) != 1 ||
        EC_POINT_mul(s.group.get(), mine.get(), sk.get(), nullptr, nullptr, s.ctx.get()) != 1 ||
        EC_POINT_add(s.group.get(), mine.get(), mine.get(), h.get(), s.ctx.get()) != 1 ||
        !EncodeCompressed(s, mine.get(), encMine.b)) {
      return ThrowOpenSslError(env, fn, "point arithmetic");
    }
    const uint8_t c = ChoiceByteMask(choices, i);
    uint8_t* slot0 = out.Data() + i * 2 * kP256PointBytes;
    uint8_t* slot1 = slot0 + kP256PointBytes;
    for (size_t k = 0; k < kP256PointBytes; k++) {
      slot0[k] = static_cast<uint8_t>((encOther[k] & c) | (encMine.b[k] & ~c));
      slot1[k] = static_cast<uint8_t>((encMine.b[k] & c) | (encOther[k] & ~c));
    }
  }
  return out;
}

// baseOtSenderRespond(context, dst, keyPrefix: U8, message: U8(128·66), secrets: U8(128·32)):
//   { message: U8(128·33), keys0: U8(128·32), keys1: U8(128·32) } | { badIndex }
// pk_{i,b} = r_{i,b} + H(i, r_{i,1−b}), z_i = a_i·G, k_{i,b} = K(i, b, r_{i,0}, r_{i,1}, z_i, a_i·pk_{i,b}).
Napi::Value BaseOtSenderRespond(const Napi::CallbackInfo& info) {
  static const char* const fn = "baseOtSenderRespond";
  Napi::Env env = info.Env();
  ErrorQueueGuard errors;
  BaseOtInputs in;
  const uint8_t* keyPrefix;
  size_t keyPrefixLen;
  const uint8_t* message;
  const uint8_t* secrets;
  if (!CheckArgCount(info, 5, fn) || !GetBaseOtInputs(info, fn, &in) ||
      !GetBytes(info, 2, fn, "keyPrefix", &keyPrefix, &keyPrefixLen) ||
      !GetFixedBytes(info, 3, fn, "message", kBaseOtCount * 2 * kP256PointBytes, &message) ||
      !GetFixedBytes(info, 4, fn, "secrets", kBaseOtCount * kP256ScalarBytes, &secrets)) {
    return env.Undefined();
  }
  const P256State& s = State(env)->p256;
  std::vector<EcPointPtr> points;
  size_t bad;
  if (!DecodeAll(s, message, 2 * kBaseOtCount, &points, &bad)) return BadIndex(env, bad);
  Napi::Uint8Array reply = Napi::Uint8Array::New(env, kBaseOtCount * kP256PointBytes);
  Napi::Uint8Array keys[2] = {Napi::Uint8Array::New(env, kBaseOtCount * kKeyBytes),
                              Napi::Uint8Array::New(env, kBaseOtCount * kKeyBytes)};
  EcPointPtr h(EC_POINT_new(s.group.get())), pk(EC_POINT_new(s.group.get())),
      z(EC_POINT_new(s.group.get())), shared(EC_POINT_new(s.group.get()));
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  if (!h || !pk || !z || !shared || !md) return ThrowOpenSslError(env, fn, "allocation");
  SecretBytes<kP256PointBytes> encShared;
  for (size_t i = 0; i < kBaseOtCount; i++) {
    const uint8_t* r[2] = {message + 2 * i * kP256PointBytes, message + (2 * i + 1) * kP256PointBytes};
    uint8_t* encZ = reply.Data() + i * kP256PointBytes;
    SecretBnPtr a = SecretScalarBn(secrets + i * kP256ScalarBytes);
    if (!a || EC_POINT_mul(s.group.get(), z.get(), a.get(), nullptr, nullptr, s.ctx.get()) != 1 ||
        !EncodeCompressed(s, z.get(), encZ)) {
      return ThrowOpenSslError(env, fn, "point arithmetic");
    }
    for (size_t b = 0; b < 2; b++) {
      if (!HashPoint(s, in, i, r[1 - b], h.get()) ||
          EC_POINT_add(s.group.get(), pk.get(), points[2 * i + b].get(), h.get(), s.ctx.get()) != 1 ||
          EC_POINT_mul(s.group.get(), shared.get(), nullptr, pk.get(), a.get(), s.ctx.get()) != 1 ||
          !EncodeCompressed(s, shared.get(), encShared.b) ||
          !DeriveKey(md.get(), keyPrefix, keyPrefixLen, i, static_cast<uint32_t>(b), r[0], r[1], encZ,
                     encShared.b, keys[b].Data() + i * kKeyBytes)) {
        OPENSSL_cleanse(keys[0].Data(), keys[0].ByteLength());
        OPENSSL_cleanse(keys[1].Data(), keys[1].ByteLength());
        return ThrowOpenSslError(env, fn, "point arithmetic or key derivation");
      }
    }
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("message", reply);
  result.Set("keys0", keys[0]);
  result.Set("keys1", keys[1]);
  return result;
}

// baseOtReceiverFinish(keyPrefix: U8, sent: U8(128·66), choices: U8(16), secrets: U8(128·32),
//                      message: U8(128·33)): Uint8Array(128·32) | { badIndex }
// k_{i,c_i} = K(i, c_i, r_{i,0}, r_{i,1}, z_i, sk_i·z_i).
Napi::Value BaseOtReceiverFinish(const Napi::CallbackInfo& info) {
  static const char* const fn = "baseOtReceiverFinish";
  Napi::Env env = info.Env();
  ErrorQueueGuard errors;
  const uint8_t* keyPrefix;
  size_t keyPrefixLen;
  const uint8_t* sent;
  const uint8_t* choices;
  const uint8_t* secrets;
  const uint8_t* message;
  if (!CheckArgCount(info, 5, fn) || !GetBytes(info, 0, fn, "keyPrefix", &keyPrefix, &keyPrefixLen) ||
      !GetFixedBytes(info, 1, fn, "sent", kBaseOtCount * 2 * kP256PointBytes, &sent) ||
      !GetFixedBytes(info, 2, fn, "choices", kBaseOtCount / 8, &choices) ||
      !GetFixedBytes(info, 3, fn, "secrets", kBaseOtCount * kP256ScalarBytes, &secrets) ||
      !GetFixedBytes(info, 4, fn, "message", kBaseOtCount * kP256PointBytes, &message)) {
    return env.Undefined();
  }
  const P256State& s = State(env)->p256;
  std::vector<EcPointPtr> zs;
  size_t bad;
  if (!DecodeAll(s, message, kBaseOtCount, &zs, &bad)) return BadIndex(env, bad);
  Napi::Uint8Array keys = Napi::Uint8Array::New(env, kBaseOtCount * kKeyBytes);
  EcPointPtr shared(EC_POINT_new(s.group.get()));
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  if (!shared || !md) return ThrowOpenSslError(env, fn, "allocation");
  SecretBytes<kP256PointBytes> encShared;
  for (size_t i = 0; i < kBaseOtCount; i++) {
    SecretBnPtr sk = SecretScalarBn(secrets + i * kP256ScalarBytes);
    const uint32_t c = (choices[i >> 3] >> (i & 7)) & 1u;
    if (!sk || EC_POINT_mul(s.group.get(), shared.get(), nullptr, zs[i].get(), sk.get(), s.ctx.get()) != 1 ||
        !EncodeCompressed(s, shared.get(), encShared.b) ||
        !DeriveKey(md.get(), keyPrefix, keyPrefixLen, i, c, sent + 2 * i * kP256PointBytes,
                   sent + (2 * i + 1) * kP256PointBytes, message + i * kP256PointBytes, encShared.b,
                   keys.Data() + i * kKeyBytes)) {
      OPENSSL_cleanse(keys.Data(), keys.ByteLength());
      return ThrowOpenSslError(env, fn, "point arithmetic or key derivation");
    }
  }
  return keys;
}

constexpr KernelExport kExports[] = {
    {"baseOtReceiverStart", BaseOtReceiverStart},
    {"baseOtSenderRespond", BaseOtSenderRespond},
    {"baseOtReceiverFinish", BaseOtReceiverFinish},
};
}  // namespace

const KernelTable kBaseOtKernels = TableOf(kExports);

}  // namespace qk
