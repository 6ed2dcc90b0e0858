/*
 * quorumkey OpenSSL 3 provider: shared declarations.
 *
 * The provider holds no secret. A key object carries the coordinator's key id, the endpoint and
 * the public key; signatures are made by the coordinator (DESIGN §2, §8).
 */
#ifndef QK_H
#define QK_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/types.h>

#define QK_PROV_NAME "quorumkey"
#define QK_PROPS "provider=quorumkey"
#define QK_EC_NAMES "EC:id-ecPublicKey:1.2.840.10045.2.1"
#define QK_PEM_LABEL "QUORUMKEY KEY"
#define QK_DER_STRUCTURE "quorumkey"   /* the DER of a key reference, between our two decoders */
#define QK_GROUP_NAME "prime256v1"
#define QK_POINT_LEN 65       /* uncompressed P-256 point */
#define QK_MAX_SIG_LEN 72     /* longest DER ECDSA-Sig-Value for P-256 */
#define QK_DEFAULT_DEADLINE_MS 5000
#define QK_MAX_DEADLINE_MS 600000
/* The coordinator refuses larger to-be-signed data (src/coordinator/sign.ts MAX_TBS_BYTES). */
#define QK_MAX_TBS (1024 * 1024)

/* Reason codes (get_reason_strings in provider.c). */
enum {
    QK_R_COORDINATOR_UNREACHABLE = 1,
    QK_R_QUORUM_INSUFFICIENT,
    QK_R_POLICY_REFUSED,
    QK_R_DEADLINE_EXCEEDED,
    QK_R_KEY_NOT_FOUND,
    QK_R_COORDINATOR_INTERNAL,
    QK_R_REQUEST_REJECTED,
    QK_R_POOL_EXHAUSTED,
    QK_R_SIGN_FAILED,
    QK_R_BAD_RESPONSE,
    QK_R_BAD_KEY_REFERENCE,
    QK_R_PRIVATE_KEY_NOT_EXPORTABLE,
    QK_R_PUBLIC_KEY_ONLY,
    QK_R_UNSUPPORTED_DIGEST,
    QK_R_DATA_TOO_LARGE,
    QK_R_BUFFER_TOO_SMALL,
    QK_R_BAD_CONFIG,
    QK_R_FORKED_AFTER_GRPC,
    QK_R_BAD_URI,
    QK_R_VERIFY_NOT_SUPPORTED,
    QK_R_BAD_PARAMETER,
    QK_R_INTERNAL,
    QK_R_CIRCUIT_OPEN,
    QK_R_TLS12_REFUSED,
};

typedef struct qk_provctx_st {
    const OSSL_CORE_HANDLE *handle;
    OSSL_LIB_CTX *libctx;  /* the library context this provider was loaded into (core's) */
    long deadline_ms;      /* per signature request */
    int log;               /* first-use / state-change lines on stderr */
} QK_PROVCTX;

/* One key: a reference to a remote private key (key_id != NULL) and/or a public key. */
typedef struct qk_key_st {
    atomic_int refcnt;
    QK_PROVCTX *provctx;
    char *key_id;          /* NULL: public key only (imported, e.g. a certificate's key) */
    char *endpoint;        /* "unix:/abs/path.sock" or "host:port" */
    char *ca_file, *cert_file, *key_file;   /* TCP + mTLS identity (paths) */
    /* Their contents, read when the reference is loaded (before privileges are dropped). */
    unsigned char *ca_pem, *cert_pem, *key_pem;
    size_t ca_pem_len, cert_pem_len, key_pem_len;
    int has_pub;
    unsigned char pub[QK_POINT_LEN];        /* uncompressed point */
} QK_KEY;

/* provider.c */
void qk_raise(const QK_PROVCTX *ctx, const char *file, int line, const char *func,
              uint32_t reason, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
#define QK_RAISE(ctx, reason, ...) qk_raise((ctx), __FILE__, __LINE__, __func__, (reason), __VA_ARGS__)
void qk_log(const QK_PROVCTX *ctx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The core's BIO functions: gets as BIO_gets; read and write all `len` bytes or fail (0). */
int qk_core_bio_gets(const QK_PROVCTX *ctx, OSSL_CORE_BIO *cin, char *buf, int size);
int qk_core_bio_read(const QK_PROVCTX *ctx, OSSL_CORE_BIO *cin, unsigned char *buf, size_t len);
int qk_core_bio_write(const QK_PROVCTX *ctx, OSSL_CORE_BIO *cout, const void *buf, size_t len);
int qk_debug_enabled(void);

/* keyref.c */
QK_KEY *qk_key_new(QK_PROVCTX *ctx);
QK_KEY *qk_key_up_ref(QK_KEY *key);
void qk_key_free(QK_KEY *key);
QK_KEY *qk_key_dup(const QK_KEY *key, int with_reference);
/* Takes `key` and gives back a copy with its public key only (no reference: it cannot sign). */
QK_KEY *qk_key_to_public(QK_KEY *key);
int qk_key_set_pub(QK_PROVCTX *ctx, QK_KEY *key, const unsigned char *point, size_t len);
/* Parses a key reference (DER); returns NULL with an error raised. `origin` names it in errors. */
QK_KEY *qk_keyref_from_der(QK_PROVCTX *ctx, const unsigned char *der, size_t len, const char *origin);
/* Is this DER shaped like a key reference (SEQUENCE { INTEGER, UTF8String, UTF8String, ... })? */
int qk_keyref_looks_like(const unsigned char *der, size_t len);
/*
 * Finds "-----BEGIN QUORUMKEY KEY-----" in text. Returns 0 if absent; 1 with the DER in *der
 * (OPENSSL_free) on success; -1 with an error raised when the block is present but broken.
 */
int qk_keyref_pem_to_der(QK_PROVCTX *ctx, const unsigned char *text, size_t len, const char *origin,
                         unsigned char **der, size_t *derlen);

/* An object reference as passed in OSSL_OBJECT_PARAM_REFERENCE. Its size is deliberately not
 * sizeof(void *): the default provider's keymgmt load() takes pointer-sized references as its own
 * objects, so it refuses ours instead of misreading them. */
typedef struct qk_objref_st {
    uint32_t magic;
    uint32_t version;
    QK_KEY *key;
} QK_OBJREF;
#define QK_OBJREF_MAGIC 0x514b5246u /* "QKRF" */
QK_KEY *qk_objref_key(const void *ref, size_t ref_sz);
int qk_key_export_public(const QK_KEY *key, int selection, OSSL_CALLBACK *cb, void *cbarg);

/* client.c */
typedef enum { QK_MD_NONE = 0, QK_MD_SHA256 = 1, QK_MD_SHA384 = 2, QK_MD_SHA512 = 3 } QK_MD;
/* Exactly one of tbs / digest. Writes the DER signature into sig (sigsize bytes). */
int qk_client_sign(QK_PROVCTX *ctx, const QK_KEY *key, QK_MD md, const unsigned char *tbs, size_t tbslen,
                   const unsigned char *digest, size_t digestlen, unsigned char *sig, size_t *siglen,
                   size_t sigsize);

/* signature.c helpers shared with keymgmt.c */
QK_MD qk_md_from_name(const char *name);
const char *qk_md_name(QK_MD md);
size_t qk_md_size(QK_MD md);

/* Dispatch tables. */
extern const OSSL_DISPATCH qk_keymgmt_functions[];
extern const OSSL_DISPATCH qk_signature_functions[];
extern const OSSL_DISPATCH qk_decoder_pem_functions[];
extern const OSSL_DISPATCH qk_decoder_der_functions[];
extern const OSSL_DISPATCH qk_store_functions[];
extern const OSSL_DISPATCH qk_encoder_text_functions[];
extern const OSSL_DISPATCH qk_encoder_spki_der_functions[];
extern const OSSL_DISPATCH qk_encoder_spki_pem_functions[];

#endif
