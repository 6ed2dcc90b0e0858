/*
 * SIGNATURE "ECDSA" for quorumkey keys.
 *
 * - digest_sign_init is local and cheap (libssl calls it for every candidate signature
 *   algorithm); update buffers the to-be-signed bytes; final makes the one round trip to the
 *   coordinator, Sign{key_id, tbs, digest_alg}, so the coordinator can apply the key's policy to
 *   the content. A size query (sig == NULL) answers 72 locally.
 * - sign_init/sign sign a prehashed digest (openssl pkeyutl -sign): Sign{key_id, digest,
 *   digest_alg}; the coordinator accepts that only for keys whose policy has raw-digest.
 * - The ctx parameter "quorumkey-send" = "tbs" (default) | "digest" makes digest-sign hash
 *   locally and send only the digest (raw-digest keys; e.g. openssl dgst -sign on arbitrary
 *   data, which the coordinator does not recognise as a structure it may sign).
 * - Digests: SHA-256, SHA-384, SHA-512.
 * - Verification is local and uses the public key only (libcrypto EC arithmetic), so a process
 *   that happens to pick this ECDSA for an ordinary public key still verifies correctly.
 * - Every signature the coordinator returns is checked against the key before it is handed out.
 * - A TLS 1.2 ServerKeyExchange is refused locally, with the setting that avoids it (TLS 1.3 only).
 * - Digests and curve arithmetic come from the provider's library context.
 */
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>

#include "qk.h"

#define QK_PARAM_SEND "quorumkey-send"

enum { OP_NONE = 0, OP_SIGN, OP_DIGEST_SIGN, OP_VERIFY, OP_DIGEST_VERIFY };

typedef struct {
    QK_PROVCTX *provctx;
    QK_KEY *key;
    int op;
    QK_MD md;                 /* QK_MD_NONE: not set */
    int send_digest;          /* quorumkey-send=digest */
    int data_started;
    unsigned char *buf;       /* buffered to-be-signed bytes */
    size_t len, cap;
    EVP_MD_CTX *mdctx;        /* digest-verify, and digest-sign with quorumkey-send=digest */
} QK_SIGCTX;

/* ---------------------------------------------------------------------------------------- */
/* Digests */

static const struct {
    QK_MD md;
    const char *names[5];
    size_t size;
    unsigned char aid[12];    /* AlgorithmIdentifier ecdsa-with-SHAxxx, no parameters */
} md_table[] = {
    { QK_MD_SHA256, { "SHA2-256", "SHA-256", "SHA256", "2.16.840.1.101.3.4.2.1", NULL }, 32,
      { 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 } },
    { QK_MD_SHA384, { "SHA2-384", "SHA-384", "SHA384", "2.16.840.1.101.3.4.2.2", NULL }, 48,
      { 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03 } },
    { QK_MD_SHA512, { "SHA2-512", "SHA-512", "SHA512", "2.16.840.1.101.3.4.2.3", NULL }, 64,
      { 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04 } },
};

QK_MD qk_md_from_name(const char *name)
{
    size_t i, j;

    if (name == NULL)
        return QK_MD_NONE;
    for (i = 0; i < sizeof(md_table) / sizeof(md_table[0]); i++)
        for (j = 0; md_table[i].names[j] != NULL; j++)
            if (strcasecmp(name, md_table[i].names[j]) == 0)
                return md_table[i].md;
    return QK_MD_NONE;
}

const char *qk_md_name(QK_MD md)
{
    return md >= QK_MD_SHA256 && md <= QK_MD_SHA512 ? md_table[md - 1].names[0] : "none";
}

size_t qk_md_size(QK_MD md)
{
    return md >= QK_MD_SHA256 && md <= QK_MD_SHA512 ? md_table[md - 1].size : 0;
}

/* From the provider's library context (the core's), not the process default one. */
static EVP_MD *fetch_md(QK_PROVCTX *ctx, QK_MD md)
{
    EVP_MD *m = EVP_MD_fetch(ctx->libctx, qk_md_name(md), NULL);

    if (m == NULL)
        QK_RAISE(ctx, QK_R_INTERNAL, "cannot fetch %s (is the default provider active?)", qk_md_name(md));
    return m;
}

static int hash(QK_PROVCTX *ctx, QK_MD md, const unsigned char *data, size_t len, unsigned char *out)
{
    EVP_MD *m = fetch_md(ctx, md);
    unsigned int outl = 0;
    int ok = m != NULL && EVP_Digest(data, len, out, &outl, m, NULL);

    EVP_MD_free(m);
    if (!ok)
        QK_RAISE(ctx, QK_R_INTERNAL, "%s failed", qk_md_name(md));
    return ok;
}

/*
 * The signed parameters of a TLS 1.2 ServerKeyExchange (RFC 8422 §5.4): client_random(32) ‖
 * server_random(32) ‖ ECParameters{named_curve(3), NamedCurve(2)} ‖ ECPoint{length(1), point}.
 * They carry no domain separation, so the signers cannot tell them from other data and the
 * coordinator refuses them; saying so here spares the round trip and names the fix.
 */
static int is_tls12_server_key_exchange(const unsigned char *tbs, size_t len)
{
    static const struct {
        unsigned group;
        size_t point;
        int uncompressed;         /* the point starts with 0x04 */
    } groups[] = {
        { 23, 65, 1 }, { 24, 97, 1 }, { 25, 133, 1 },   /* secp256r1, secp384r1, secp521r1 */
        { 26, 65, 1 }, { 27, 97, 1 }, { 28, 129, 1 },   /* brainpoolP256r1, P384r1, P512r1 */
        { 29, 32, 0 }, { 30, 56, 0 },                   /* x25519, x448 */
    };
    size_t i;

    if (len < 69 || tbs[64] != 3 || len != 68 + (size_t)tbs[67])
        return 0;
    for (i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
        if (groups[i].group == ((unsigned)tbs[65] << 8 | tbs[66]) && groups[i].point == tbs[67])
            return !groups[i].uncompressed || tbs[68] == 0x04;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* ECDSA verification with the public key (SEC 1 §4.1.4), local. 1 valid, 0 invalid, -1 error. */

int qk_ecdsa_verify(const QK_KEY *key, const unsigned char *dgst, size_t dlen, const unsigned char *sig,
                    size_t siglen);

int qk_ecdsa_verify(const QK_KEY *key, const unsigned char *dgst, size_t dlen, const unsigned char *sig,
                    size_t siglen)
{
    EC_GROUP *group = NULL;
    EC_POINT *q = NULL, *x = NULL;
    ECDSA_SIG *s = NULL;
    BN_CTX *bn = NULL;
    BIGNUM *e, *w, *u1, *u2, *vx;
    const BIGNUM *r, *sv, *n;
    const unsigned char *p = sig;
    unsigned char *der = NULL;
    OSSL_LIB_CTX *libctx;
    int derlen, ret = -1;

    if (key == NULL || !key->has_pub || dgst == NULL || sig == NULL)
        return -1;
    ERR_set_mark();
    s = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
    if (s == NULL || p != sig + siglen) {
        ret = 0;
        goto end;
    }
    /* Strict DER: re-encoding gives the same bytes. */
    derlen = i2d_ECDSA_SIG(s, &der);
    if (derlen < 0 || (size_t)derlen != siglen || memcmp(der, sig, siglen) != 0) {
        ret = 0;
        goto end;
    }
    libctx = key->provctx != NULL ? key->provctx->libctx : NULL;
    if ((group = EC_GROUP_new_by_curve_name_ex(libctx, NULL, NID_X9_62_prime256v1)) == NULL
        || (bn = BN_CTX_new_ex(libctx)) == NULL)
        goto end;
    BN_CTX_start(bn);
    e = BN_CTX_get(bn);
    w = BN_CTX_get(bn);
    u1 = BN_CTX_get(bn);
    u2 = BN_CTX_get(bn);
    vx = BN_CTX_get(bn);
    if (vx == NULL)
        goto end;
    n = EC_GROUP_get0_order(group);
    ECDSA_SIG_get0(s, &r, &sv);
    if (BN_is_zero(r) || BN_is_negative(r) || BN_ucmp(r, n) >= 0 || BN_is_zero(sv) || BN_is_negative(sv)
        || BN_ucmp(sv, n) >= 0) {
        ret = 0;
        goto end;
    }
    /* e = leftmost 256 bits of the digest */
    if (BN_bin2bn(dgst, (int)(dlen > 32 ? 32 : dlen), e) == NULL)
        goto end;
    if (BN_mod_inverse(w, sv, n, bn) == NULL || !BN_mod_mul(u1, e, w, n, bn) || !BN_mod_mul(u2, r, w, n, bn))
        goto end;
    if ((q = EC_POINT_new(group)) == NULL || (x = EC_POINT_new(group)) == NULL
        || !EC_POINT_oct2point(group, q, key->pub, QK_POINT_LEN, bn) || !EC_POINT_mul(group, x, u1, q, u2, bn))
        goto end;
    if (EC_POINT_is_at_infinity(group, x)) {
        ret = 0;
        goto end;
    }
    if (!EC_POINT_get_affine_coordinates(group, x, vx, NULL, bn) || !BN_nnmod(vx, vx, n, bn))
        goto end;
    ret = BN_cmp(vx, r) == 0;
end:
    ERR_pop_to_mark();
    if (bn != NULL)
        BN_CTX_end(bn);
    BN_CTX_free(bn);
    EC_POINT_free(q);
    EC_POINT_free(x);
    EC_GROUP_free(group);
    ECDSA_SIG_free(s);
    OPENSSL_free(der);
    return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* Context */

static OSSL_FUNC_signature_newctx_fn sig_newctx;
static OSSL_FUNC_signature_freectx_fn sig_freectx;
static OSSL_FUNC_signature_dupctx_fn sig_dupctx;
static OSSL_FUNC_signature_sign_init_fn sig_sign_init;
static OSSL_FUNC_signature_sign_fn sig_sign;
static OSSL_FUNC_signature_verify_init_fn sig_verify_init;
static OSSL_FUNC_signature_verify_fn sig_verify;
static OSSL_FUNC_signature_digest_sign_init_fn sig_digest_sign_init;
static OSSL_FUNC_signature_digest_sign_update_fn sig_digest_update;
static OSSL_FUNC_signature_digest_sign_final_fn sig_digest_sign_final;
static OSSL_FUNC_signature_digest_sign_fn sig_digest_sign;
static OSSL_FUNC_signature_digest_verify_init_fn sig_digest_verify_init;
static OSSL_FUNC_signature_digest_verify_final_fn sig_digest_verify_final;
static OSSL_FUNC_signature_digest_verify_fn sig_digest_verify;
static OSSL_FUNC_signature_get_ctx_params_fn sig_get_ctx_params;
static OSSL_FUNC_signature_gettable_ctx_params_fn sig_gettable_ctx_params;
static OSSL_FUNC_signature_set_ctx_params_fn sig_set_ctx_params;
static OSSL_FUNC_signature_settable_ctx_params_fn sig_settable_ctx_params;

static void *sig_newctx(void *provctx, const char *propq)
{
    QK_SIGCTX *c = OPENSSL_zalloc(sizeof(*c));

    (void)propq;
    if (c == NULL) {
        QK_RAISE(provctx, QK_R_INTERNAL, "out of memory");
        return NULL;
    }
    c->provctx = provctx;
    return c;
}

static void reset_data(QK_SIGCTX *c)
{
    OPENSSL_free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
    EVP_MD_CTX_free(c->mdctx);
    c->mdctx = NULL;
    c->data_started = 0;
}

static void sig_freectx(void *vctx)
{
    QK_SIGCTX *c = vctx;

    if (c == NULL)
        return;
    reset_data(c);
    qk_key_free(c->key);
    OPENSSL_free(c);
}

/* Field by field into a zeroed context: nothing uninitialised (padding, unused capacity) is copied. */
static void *sig_dupctx(void *vctx)
{
    QK_SIGCTX *src = vctx, *c;

    if (src == NULL)
        return NULL;
    if ((c = OPENSSL_zalloc(sizeof(*c))) == NULL) {
        QK_RAISE(src->provctx, QK_R_INTERNAL, "out of memory");
        return NULL;
    }
    c->provctx = src->provctx;
    c->key = src->key != NULL ? qk_key_up_ref(src->key) : NULL;
    c->op = src->op;
    c->md = src->md;
    c->send_digest = src->send_digest;
    c->data_started = src->data_started;
    if (src->len > 0) {
        if ((c->buf = OPENSSL_malloc(src->cap)) == NULL)
            goto err;
        memcpy(c->buf, src->buf, src->len);
        c->len = src->len;
        c->cap = src->cap;
    }
    if (src->mdctx != NULL
        && ((c->mdctx = EVP_MD_CTX_new()) == NULL || !EVP_MD_CTX_copy_ex(c->mdctx, src->mdctx)))
        goto err;
    return c;
err:
    QK_RAISE(src->provctx, QK_R_INTERNAL, "cannot duplicate the signature context");
    sig_freectx(c);
    return NULL;
}

static int set_md(QK_SIGCTX *c, const char *name)
{
    QK_MD md = qk_md_from_name(name);

    if (md == QK_MD_NONE) {
        QK_RAISE(c->provctx, QK_R_UNSUPPORTED_DIGEST,
                 "digest '%s': quorumkey ECDSA signs with SHA-256, SHA-384 or SHA-512", name);
        return 0;
    }
    if (c->data_started && md != c->md) {
        QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "the digest cannot change once data has been passed");
        return 0;
    }
    c->md = md;
    return 1;
}

static int init(QK_SIGCTX *c, void *vkey, int op, const OSSL_PARAM params[])
{
    QK_KEY *key = vkey;

    if (key == NULL && c->key == NULL) {
        QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "no key");
        return 0;
    }
    if (key != NULL) {
        if ((op == OP_SIGN || op == OP_DIGEST_SIGN) && key->key_id == NULL) {
            QK_RAISE(c->provctx, QK_R_PUBLIC_KEY_ONLY,
                     "this key object carries only a public key; load a quorumkey key reference to sign");
            return 0;
        }
        if (!key->has_pub) {
            QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "key without a public key");
            return 0;
        }
        qk_key_up_ref(key);
        qk_key_free(c->key);
        c->key = key;
    } else if ((op == OP_SIGN || op == OP_DIGEST_SIGN) && c->key->key_id == NULL) {
        QK_RAISE(c->provctx, QK_R_PUBLIC_KEY_ONLY, "this key object carries only a public key");
        return 0;
    }
    c->op = op;
    reset_data(c);
    return sig_set_ctx_params(c, params);
}

static int sig_sign_init(void *vctx, void *vkey, const OSSL_PARAM params[])
{
    QK_SIGCTX *c = vctx;

    c->md = QK_MD_NONE;
    return init(c, vkey, OP_SIGN, params);
}

static int sig_verify_init(void *vctx, void *vkey, const OSSL_PARAM params[])
{
    QK_SIGCTX *c = vctx;

    c->md = QK_MD_NONE;
    return init(c, vkey, OP_VERIFY, params);
}

/* The digest algorithm of a prehashed digest: the one set, else inferred from the length. */
static QK_MD md_for_digest(QK_SIGCTX *c, size_t len)
{
    QK_MD md = c->md;

    if (md != QK_MD_NONE) {
        if (qk_md_size(md) != len) {
            QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "digest is %zu bytes, %s needs %zu", len, qk_md_name(md),
                     qk_md_size(md));
            return QK_MD_NONE;
        }
        return md;
    }
    switch (len) {
    case 32:
        return QK_MD_SHA256;
    case 48:
        return QK_MD_SHA384;
    case 64:
        return QK_MD_SHA512;
    }
    QK_RAISE(c->provctx, QK_R_UNSUPPORTED_DIGEST, "a %zu-byte digest is not SHA-256, SHA-384 or SHA-512", len);
    return QK_MD_NONE;
}

/* The round trip, then a local check of the answer. */
static int remote_sign(QK_SIGCTX *c, QK_MD md, const unsigned char *tbs, size_t tbslen, const unsigned char *dgst,
                       size_t dlen, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    unsigned char own[64];
    int v;

    if (sigsize < QK_MAX_SIG_LEN) {
        QK_RAISE(c->provctx, QK_R_BUFFER_TOO_SMALL, "signature buffer of %zu bytes, %d needed", sigsize,
                 QK_MAX_SIG_LEN);
        return 0;
    }
    if (tbs != NULL && is_tls12_server_key_exchange(tbs, tbslen)) {
        QK_RAISE(c->provctx, QK_R_TLS12_REFUSED,
                 "key '%s' signs the TLS 1.3 CertificateVerify, not a TLS 1.2 ServerKeyExchange (no domain "
                 "separation: the signers refuse it). Configure TLS 1.3 only: nginx 'ssl_protocols TLSv1.3;', "
                 "HAProxy 'ssl-min-ver TLSv1.3' (bind line or ssl-default-bind-options), openssl s_server -tls1_3",
                 c->key->key_id);
        return 0;
    }
    if (!qk_client_sign(c->provctx, c->key, md, tbs, tbslen, dgst, dlen, sig, siglen, sigsize))
        return 0;
    if (dgst == NULL) {
        if (!hash(c->provctx, md, tbs, tbslen, own))
            return 0;
        dgst = own;
        dlen = qk_md_size(md);
    }
    v = qk_ecdsa_verify(c->key, dgst, dlen, sig, *siglen);
    if (v != 1) {
        QK_RAISE(c->provctx, QK_R_BAD_RESPONSE,
                 "the signature returned for key '%s' by %s does not verify under the key reference's public key",
                 c->key->key_id, c->key->endpoint);
        OPENSSL_cleanse(sig, *siglen);
        *siglen = 0;
        return 0;
    }
    return 1;
}

static int sig_sign(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                    size_t tbslen)
{
    QK_SIGCTX *c = vctx;
    QK_MD md;

    if (c->op != OP_SIGN) {
        QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "sign without sign_init");
        return 0;
    }
    if (sig == NULL) {
        *siglen = QK_MAX_SIG_LEN;
        return 1;
    }
    if ((md = md_for_digest(c, tbslen)) == QK_MD_NONE)
        return 0;
    return remote_sign(c, md, NULL, 0, tbs, tbslen, sig, siglen, sigsize);
}

static int sig_verify(void *vctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs, size_t tbslen)
{
    QK_SIGCTX *c = vctx;
    QK_MD md;

    if (c->op != OP_VERIFY) {
        QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "verify without verify_init");
        return 0;
    }
    if ((md = md_for_digest(c, tbslen)) == QK_MD_NONE)
        return 0;
    return qk_ecdsa_verify(c->key, tbs, tbslen, sig, siglen) == 1;
}

static int digest_init(QK_SIGCTX *c, const char *mdname, void *vkey, int op, const OSSL_PARAM params[])
{
    QK_MD md = QK_MD_SHA256;

    if (mdname != NULL && *mdname != '\0') {
        md = qk_md_from_name(mdname);
        if (md == QK_MD_NONE) {
            QK_RAISE(c->provctx, QK_R_UNSUPPORTED_DIGEST,
                     "digest '%s': quorumkey ECDSA signs with SHA-256, SHA-384 or SHA-512", mdname);
            return 0;
        }
    }
    c->md = md;
    return init(c, vkey, op, params);
}

static int sig_digest_sign_init(void *vctx, const char *mdname, void *vkey, const OSSL_PARAM params[])
{
    return digest_init(vctx, mdname, vkey, OP_DIGEST_SIGN, params);
}

static int sig_digest_verify_init(void *vctx, const char *mdname, void *vkey, const OSSL_PARAM params[])
{
    return digest_init(vctx, mdname, vkey, OP_DIGEST_VERIFY, params);
}

static int use_mdctx(const QK_SIGCTX *c)
{
    return c->op == OP_DIGEST_VERIFY || (c->op == OP_DIGEST_SIGN && c->send_digest);
}

static int sig_digest_update(void *vctx, const unsigned char *data, size_t datalen)
{
    QK_SIGCTX *c = vctx;

    if (c->op != OP_DIGEST_SIGN && c->op != OP_DIGEST_VERIFY) {
        QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "update without digest_sign_init");
        return 0;
    }
    if (use_mdctx(c)) {
        if (c->mdctx == NULL) {
            EVP_MD *m = fetch_md(c->provctx, c->md);
            int ok = m != NULL && (c->mdctx = EVP_MD_CTX_new()) != NULL && EVP_DigestInit_ex2(c->mdctx, m, NULL);

            EVP_MD_free(m);   /* the context keeps its own reference */
            if (!ok) {
                QK_RAISE(c->provctx, QK_R_INTERNAL, "cannot start %s", qk_md_name(c->md));
                return 0;
            }
        }
        c->data_started = 1;
        return EVP_DigestUpdate(c->mdctx, data, datalen);
    }
    c->data_started = 1;
    if (datalen > QK_MAX_TBS - c->len) {
        QK_RAISE(c->provctx, QK_R_DATA_TOO_LARGE,
                 "more than %d bytes to sign; the coordinator takes at most that (for raw-digest keys, send only "
                 "the digest: -sigopt " QK_PARAM_SEND ":digest)",
                 QK_MAX_TBS);
        return 0;
    }
    if (c->len + datalen > c->cap) {
        size_t cap = c->cap == 0 ? 256 : c->cap;
        unsigned char *b;

        while (cap < c->len + datalen)
            cap *= 2;
        if ((b = OPENSSL_realloc(c->buf, cap)) == NULL) {
            QK_RAISE(c->provctx, QK_R_INTERNAL, "out of memory");
            return 0;
        }
        c->buf = b;
        c->cap = cap;
    }
    if (datalen > 0)
        memcpy(c->buf + c->len, data, datalen);
    c->len += datalen;
    return 1;
}

static int final_digest(QK_SIGCTX *c, unsigned char *out)
{
    EVP_MD_CTX *tmp = EVP_MD_CTX_new();
    unsigned int outl = 0;
    int ok;

    if (c->mdctx == NULL) {
        /* No update: the digest of empty input. */
        EVP_MD_CTX_free(tmp);
        return hash(c->provctx, c->md, (const unsigned char *)"", 0, out);
    }
    /* On a copy: final may be called again on the same context. */
    ok = tmp != NULL && EVP_MD_CTX_copy_ex(tmp, c->mdctx) && EVP_DigestFinal_ex(tmp, out, &outl);
    EVP_MD_CTX_free(tmp);
    if (!ok)
        QK_RAISE(c->provctx, QK_R_INTERNAL, "%s failed", qk_md_name(c->md));
    return ok;
}

static int sig_digest_sign_final(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    QK_SIGCTX *c = vctx;
    unsigned char dgst[64];

    if (c->op != OP_DIGEST_SIGN) {
        QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "final without digest_sign_init");
        return 0;
    }
    if (sig == NULL) {
        *siglen = QK_MAX_SIG_LEN;
        return 1;
    }
    if (c->send_digest) {
        if (!final_digest(c, dgst))
            return 0;
        return remote_sign(c, c->md, NULL, 0, dgst, qk_md_size(c->md), sig, siglen, sigsize);
    }
    if (c->len == 0) {
        QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "nothing to sign (empty input)");
        return 0;
    }
    return remote_sign(c, c->md, c->buf, c->len, NULL, 0, sig, siglen, sigsize);
}

static int sig_digest_sign(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                           size_t tbslen)
{
    QK_SIGCTX *c = vctx;
    unsigned char dgst[64];

    if (c->op != OP_DIGEST_SIGN) {
        QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "sign without digest_sign_init");
        return 0;
    }
    if (sig == NULL) {
        *siglen = QK_MAX_SIG_LEN;
        return 1;
    }
    if (c->send_digest) {
        if (!hash(c->provctx, c->md, tbs, tbslen, dgst))
            return 0;
        return remote_sign(c, c->md, NULL, 0, dgst, qk_md_size(c->md), sig, siglen, sigsize);
    }
    if (tbslen == 0) {
        QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "nothing to sign (empty input)");
        return 0;
    }
    if (tbslen > QK_MAX_TBS) {
        QK_RAISE(c->provctx, QK_R_DATA_TOO_LARGE, "%zu bytes to sign; the coordinator takes at most %d", tbslen,
                 QK_MAX_TBS);
        return 0;
    }
    return remote_sign(c, c->md, tbs, tbslen, NULL, 0, sig, siglen, sigsize);
}

static int sig_digest_verify_final(void *vctx, const unsigned char *sig, size_t siglen)
{
    QK_SIGCTX *c = vctx;
    unsigned char dgst[64];

    if (c->op != OP_DIGEST_VERIFY) {
        QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "final without digest_verify_init");
        return 0;
    }
    if (!final_digest(c, dgst))
        return 0;
    return qk_ecdsa_verify(c->key, dgst, qk_md_size(c->md), sig, siglen) == 1;
}

static int sig_digest_verify(void *vctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs,
                             size_t tbslen)
{
    QK_SIGCTX *c = vctx;
    unsigned char dgst[64];

    if (c->op != OP_DIGEST_VERIFY) {
        QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "verify without digest_verify_init");
        return 0;
    }
    if (!hash(c->provctx, c->md, tbs, tbslen, dgst))
        return 0;
    return qk_ecdsa_verify(c->key, dgst, qk_md_size(c->md), sig, siglen) == 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Parameters */

static int sig_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    QK_SIGCTX *c = vctx;
    OSSL_PARAM *p;

    if (params == NULL)
        return 1;
    for (p = params; p->key != NULL; p++) {
        int ok = 1;

        if (qk_debug_enabled())
            qk_log(c->provctx, "signature get_ctx_params '%s'", p->key);
        if (strcmp(p->key, OSSL_SIGNATURE_PARAM_ALGORITHM_ID) == 0) {
            /* Known once a digest is: always after digest_sign_init (SHA-256 by default). */
            if (c->md != QK_MD_NONE)
                ok = OSSL_PARAM_set_octet_string(p, md_table[c->md - 1].aid, sizeof(md_table[0].aid));
        } else if (strcmp(p->key, OSSL_SIGNATURE_PARAM_DIGEST) == 0) {
            if (c->md != QK_MD_NONE)
                ok = OSSL_PARAM_set_utf8_string(p, qk_md_name(c->md));
        } else if (strcmp(p->key, OSSL_SIGNATURE_PARAM_DIGEST_SIZE) == 0) {
            ok = OSSL_PARAM_set_size_t(p, qk_md_size(c->md));
        } else if (strcmp(p->key, QK_PARAM_SEND) == 0) {
            ok = OSSL_PARAM_set_utf8_string(p, c->send_digest ? "digest" : "tbs");
        }
        if (!ok)
            return 0;
    }
    return 1;
}

static const OSSL_PARAM sig_gettable[] = {
    OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_size_t(OSSL_SIGNATURE_PARAM_DIGEST_SIZE, NULL),
    OSSL_PARAM_utf8_string(QK_PARAM_SEND, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *sig_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return sig_gettable;
}

static int sig_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    QK_SIGCTX *c = vctx;
    const OSSL_PARAM *p;

    if (params == NULL)
        return 1;
    for (p = params; p->key != NULL; p++) {
        const char *s = NULL;
        size_t sz;

        if (qk_debug_enabled())
            qk_log(c->provctx, "signature set_ctx_params '%s'", p->key);
        if (strcmp(p->key, OSSL_SIGNATURE_PARAM_DIGEST) == 0) {
            if (!OSSL_PARAM_get_utf8_string_ptr(p, &s) || !set_md(c, s))
                return 0;
        } else if (strcmp(p->key, OSSL_SIGNATURE_PARAM_PROPERTIES) == 0) {
            /* Digest properties: the digest is computed by the coordinator. */
            if (!OSSL_PARAM_get_utf8_string_ptr(p, &s))
                return 0;
        } else if (strcmp(p->key, OSSL_SIGNATURE_PARAM_DIGEST_SIZE) == 0) {
            if (!OSSL_PARAM_get_size_t(p, &sz))
                return 0;
            if (c->md != QK_MD_NONE && sz != qk_md_size(c->md)) {
                QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "digest size %zu does not match %s", sz, qk_md_name(c->md));
                return 0;
            }
        } else if (strcmp(p->key, QK_PARAM_SEND) == 0) {
            if (!OSSL_PARAM_get_utf8_string_ptr(p, &s))
                return 0;
            if (c->data_started) {
                QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, QK_PARAM_SEND " cannot change once data has been passed");
                return 0;
            }
            if (strcmp(s, "tbs") == 0)
                c->send_digest = 0;
            else if (strcmp(s, "digest") == 0)
                c->send_digest = 1;
            else {
                QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, QK_PARAM_SEND " must be 'tbs' or 'digest', not '%s'", s);
                return 0;
            }
        }
    }
    return 1;
}

static const OSSL_PARAM sig_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_size_t(OSSL_SIGNATURE_PARAM_DIGEST_SIZE, NULL),
    OSSL_PARAM_utf8_string(QK_PARAM_SEND, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *sig_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return sig_settable;
}

const OSSL_DISPATCH qk_signature_functions[] = {
    { OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))sig_newctx },
    { OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))sig_freectx },
    { OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))sig_dupctx },
    { OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))sig_sign_init },
    { OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))sig_sign },
    { OSSL_FUNC_SIGNATURE_VERIFY_INIT, (void (*)(void))sig_verify_init },
    { OSSL_FUNC_SIGNATURE_VERIFY, (void (*)(void))sig_verify },
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))sig_digest_sign_init },
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))sig_digest_update },
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))sig_digest_sign_final },
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (void (*)(void))sig_digest_sign },
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT, (void (*)(void))sig_digest_verify_init },
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE, (void (*)(void))sig_digest_update },
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL, (void (*)(void))sig_digest_verify_final },
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY, (void (*)(void))sig_digest_verify },
    { OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))sig_get_ctx_params },
    { OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))sig_gettable_ctx_params },
    { OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))sig_set_ctx_params },
    { OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))sig_settable_ctx_params },
    { 0, NULL }
};
