/*
 * ENCODERs for quorumkey keys (DESIGN §8). They only ever write public information:
 *
 *  "EC" output=text         openssl pkey -text / -text_pub, EVP_PKEY_print_*: the default
 *                           provider's layout, with the private key named as held by the
 *                           cluster (key id and endpoint) instead of printed.
 *  "EC" output=der|pem,     openssl pkey -pubout, PEM_write_bio_PUBKEY, i2d_PUBKEY, X509_PUBKEY:
 *       structure=SubjectPublicKeyInfo   a normal P-256 public key any provider reads.
 *
 * No private-key structure is offered, so writing the private key still fails (keymgmt.c).
 * They serve only this provider's keys: without import_object OpenSSL never hands them others.
 */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "qk.h"

#define HEX_PER_LINE 15 /* as the default provider's EC text encoder */

static OSSL_FUNC_encoder_newctx_fn enc_newctx;
static OSSL_FUNC_encoder_freectx_fn enc_freectx;
static OSSL_FUNC_encoder_does_selection_fn text_does_selection;
static OSSL_FUNC_encoder_does_selection_fn spki_does_selection;
static OSSL_FUNC_encoder_encode_fn text_encode;
static OSSL_FUNC_encoder_encode_fn spki_der_encode;
static OSSL_FUNC_encoder_encode_fn spki_pem_encode;

/* SubjectPublicKeyInfo { AlgorithmIdentifier { id-ecPublicKey, prime256v1 }, BIT STRING } up to the point. */
static const unsigned char SPKI_P256_PREFIX[] = {
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
};
#define SPKI_LEN (sizeof(SPKI_P256_PREFIX) + QK_POINT_LEN)

typedef struct {
    QK_PROVCTX *provctx;
} QK_ENCCTX;

static void *enc_newctx(void *provctx)
{
    QK_ENCCTX *c = OPENSSL_zalloc(sizeof(*c));

    if (c != NULL)
        c->provctx = provctx;
    return c;
}

static void enc_freectx(void *vctx)
{
    OPENSSL_free(vctx);
}

static int text_does_selection(void *provctx, int selection)
{
    (void)provctx;
    (void)selection;
    return 1; /* the key, its public half or its parameters */
}

/* Like the default provider's: public key or parameters asked, and no private key. */
static int spki_does_selection(void *provctx, int selection)
{
    (void)provctx;
    if (selection == 0)
        return 1;
    if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
        return 0;
    return (selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY | OSSL_KEYMGMT_SELECT_ALL_PARAMETERS)) != 0;
}

/* Our key object, with its public key, or NULL with an error raised. */
static const QK_KEY *key_of(const QK_ENCCTX *c, const void *obj_raw)
{
    const QK_KEY *key = obj_raw;

    if (key == NULL) {
        QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "the quorumkey encoders take only quorumkey key objects");
        return NULL;
    }
    if (!key->has_pub) {
        QK_RAISE(c->provctx, QK_R_BAD_PARAMETER, "key object without a public key");
        return NULL;
    }
    return key;
}

static void spki_der(const QK_KEY *key, unsigned char out[SPKI_LEN])
{
    memcpy(out, SPKI_P256_PREFIX, sizeof(SPKI_P256_PREFIX));
    memcpy(out + sizeof(SPKI_P256_PREFIX), key->pub, QK_POINT_LEN);
}

static int spki_der_encode(void *vctx, OSSL_CORE_BIO *cout, const void *obj_raw, const OSSL_PARAM obj_abstract[],
                           int selection, OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
    QK_ENCCTX *c = vctx;
    const QK_KEY *key = key_of(c, obj_raw);
    unsigned char der[SPKI_LEN];

    (void)obj_abstract;
    (void)selection;
    (void)cb;
    (void)cbarg;
    if (key == NULL)
        return 0;
    spki_der(key, der);
    return qk_core_bio_write(c->provctx, cout, der, sizeof(der));
}

static int spki_pem_encode(void *vctx, OSSL_CORE_BIO *cout, const void *obj_raw, const OSSL_PARAM obj_abstract[],
                           int selection, OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
    static const char begin[] = "-----BEGIN PUBLIC KEY-----\n", end[] = "-----END PUBLIC KEY-----\n";
    QK_ENCCTX *c = vctx;
    const QK_KEY *key = key_of(c, obj_raw);
    unsigned char der[SPKI_LEN];
    /* 64 base64 characters (48 bytes) a line, as PEM_write does. */
    unsigned char b64[65];
    size_t off;
    int n;

    (void)obj_abstract;
    (void)selection;
    (void)cb;
    (void)cbarg;
    if (key == NULL)
        return 0;
    spki_der(key, der);
    if (!qk_core_bio_write(c->provctx, cout, begin, strlen(begin)))
        return 0;
    for (off = 0; off < sizeof(der); off += 48) {
        size_t chunk = sizeof(der) - off < 48 ? sizeof(der) - off : 48;

        n = EVP_EncodeBlock(b64, der + off, (int)chunk);
        b64[n] = '\n';
        if (!qk_core_bio_write(c->provctx, cout, b64, (size_t)n + 1))
            return 0;
    }
    return qk_core_bio_write(c->provctx, cout, end, strlen(end));
}

/* "label\n" then the bytes as "    04:ab:...", HEX_PER_LINE a line (the default provider's layout). */
static int print_hex(BIO *out, const char *label, const unsigned char *buf, size_t len)
{
    size_t i;

    if (BIO_printf(out, "%s\n", label) <= 0)
        return 0;
    for (i = 0; i < len; i++) {
        if (i % HEX_PER_LINE == 0 && BIO_printf(out, "%s    ", i > 0 ? "\n" : "") <= 0)
            return 0;
        if (BIO_printf(out, "%02x%s", buf[i], i + 1 == len ? "" : ":") <= 0)
            return 0;
    }
    return BIO_printf(out, "\n") > 0;
}

static int print_key(BIO *out, const QK_KEY *key, int selection)
{
    int priv = (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0;
    int pub = priv || (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0;

    if (BIO_printf(out, "%s: (256 bit)\n", priv ? "Private-Key" : pub ? "Public-Key" : "EC-Parameters") <= 0)
        return 0;
    if (priv
        && (BIO_printf(out, "priv: held by the quorumkey cluster (threshold signers), not by this process\n") <= 0
            || BIO_printf(out, "    key id: %s\n    endpoint: %s\n", key->key_id, key->endpoint) <= 0
            || (key->ca_file != NULL
                && BIO_printf(out, "    client TLS: ca %s, cert %s, key %s\n", key->ca_file, key->cert_file,
                              key->key_file) <= 0)))
        return 0;
    if (pub && !print_hex(out, "pub:", key->pub, QK_POINT_LEN))
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS) || selection == 0)
        return BIO_printf(out, "ASN1 OID: %s\nNIST CURVE: P-256\n", QK_GROUP_NAME) > 0;
    return 1;
}

static int text_encode(void *vctx, OSSL_CORE_BIO *cout, const void *obj_raw, const OSSL_PARAM obj_abstract[],
                       int selection, OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
    QK_ENCCTX *c = vctx;
    const QK_KEY *key = key_of(c, obj_raw);
    BIO *mem;
    char *text = NULL;
    long len;
    int ok;

    (void)obj_abstract;
    (void)cb;
    (void)cbarg;
    if (key == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && key->key_id == NULL) {
        QK_RAISE(c->provctx, QK_R_PUBLIC_KEY_ONLY, "this key object carries only a public key (no key reference)");
        return 0;
    }
    if ((mem = BIO_new(BIO_s_mem())) == NULL) {
        QK_RAISE(c->provctx, QK_R_INTERNAL, "out of memory");
        return 0;
    }
    ok = print_key(mem, key, selection) && (len = BIO_get_mem_data(mem, &text)) > 0
         && qk_core_bio_write(c->provctx, cout, text, (size_t)len);
    BIO_free(mem);
    return ok;
}

const OSSL_DISPATCH qk_encoder_text_functions[] = {
    { OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))enc_newctx },
    { OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))enc_freectx },
    { OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))text_does_selection },
    { OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))text_encode },
    { 0, NULL }
};

const OSSL_DISPATCH qk_encoder_spki_der_functions[] = {
    { OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))enc_newctx },
    { OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))enc_freectx },
    { OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))spki_does_selection },
    { OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))spki_der_encode },
    { 0, NULL }
};

const OSSL_DISPATCH qk_encoder_spki_pem_functions[] = {
    { OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))enc_newctx },
    { OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))enc_freectx },
    { OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))spki_does_selection },
    { OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))spki_pem_encode },
    { 0, NULL }
};
