/*
 * KEYMGMT "EC" for quorumkey keys. The key object holds the coordinator's key id, the endpoint
 * and the public key; the private key is held by the threshold signers.
 *
 * - has/match/import/export work on the public part, so libssl's X509_check_private_key and
 *   SSL_CTX_check_private_key (EVP_PKEY_eq) can compare a certificate's key with ours, and
 *   other providers can take the public key (verification, their encoders).
 * - export of any private selection of a key reference fails: libssl first tries the default
 *   provider's ECDSA with an exported copy and falls back to our ECDSA only when that export
 *   fails; and no private key can be written out (openssl pkey -out). A public-only object (a
 *   certificate's key, a reference loaded with -pubin) exports its public key whatever is asked,
 *   as the default provider's keys do, so other providers can verify with it.
 * - get_params answers locally everything libssl, x509, req and ocsp ask (DESIGN §8).
 */
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>

#include "qk.h"

static OSSL_FUNC_keymgmt_new_fn km_new;
static OSSL_FUNC_keymgmt_free_fn km_free;
static OSSL_FUNC_keymgmt_load_fn km_load;
static OSSL_FUNC_keymgmt_has_fn km_has;
static OSSL_FUNC_keymgmt_match_fn km_match;
static OSSL_FUNC_keymgmt_import_fn km_import;
static OSSL_FUNC_keymgmt_import_types_fn km_import_types;
static OSSL_FUNC_keymgmt_export_fn km_export;
static OSSL_FUNC_keymgmt_export_types_fn km_export_types;
static OSSL_FUNC_keymgmt_get_params_fn km_get_params;
static OSSL_FUNC_keymgmt_gettable_params_fn km_gettable_params;
static OSSL_FUNC_keymgmt_set_params_fn km_set_params;
static OSSL_FUNC_keymgmt_settable_params_fn km_settable_params;
static OSSL_FUNC_keymgmt_query_operation_name_fn km_query_operation_name;
static OSSL_FUNC_keymgmt_dup_fn km_dup;

static void *km_new(void *provctx)
{
    return qk_key_new(provctx);
}

static void km_free(void *keydata)
{
    qk_key_free(keydata);
}

/*
 * OpenSSL picks the first provider that offers an algorithm when nothing asks for a specific
 * one. If quorumkey comes before default in openssl.cnf, generic EC work (key generation, ECDHE
 * with P-256, other providers' keys) lands here and fails: say so once per process.
 */
static void check_provider_order(QK_PROVCTX *ctx)
{
    static atomic_int checked;
    EVP_KEYMGMT *km;

    if (atomic_exchange(&checked, 1) != 0)
        return;
    ERR_set_mark();
    km = EVP_KEYMGMT_fetch(ctx->libctx, "EC", NULL);
    if (km != NULL && OSSL_PROVIDER_get0_provider_ctx(EVP_KEYMGMT_get0_provider(km)) == ctx)
        qk_log(NULL, "WARNING: openssl.cnf activates quorumkey before the default provider, so ordinary EC "
                     "operations (key generation, ECDHE on P-256) would be handed to quorumkey and fail: list "
                     "'default = default_sect' before 'quorumkey = quorumkey_sect' in [provider_sect]");
    EVP_KEYMGMT_free(km);
    ERR_pop_to_mark();
}

/* From a decoder or store object reference (QK_OBJREF). */
static void *km_load(const void *reference, size_t reference_sz)
{
    QK_KEY *key = qk_objref_key(reference, reference_sz);

    if (key != NULL)
        check_provider_order(key->provctx);
    return qk_key_up_ref(key);
}

static int km_has(const void *keydata, int selection)
{
    const QK_KEY *key = keydata;

    if (key == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) && !key->has_pub)
        return 0;
    /* The private key exists, remotely, when we hold a reference to it. */
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && key->key_id == NULL)
        return 0;
    /* Domain parameters: always P-256. Other parameters: none to have. */
    return 1;
}

static int km_match(const void *keydata1, const void *keydata2, int selection)
{
    const QK_KEY *a = keydata1, *b = keydata2;

    if (a == NULL || b == NULL)
        return 0;
    /* OSSL_KEYMGMT_SELECT_ALL_PARAMETERS: both are P-256 by construction. */
    if (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) {
        if (!a->has_pub || !b->has_pub)
            return 0;
        if (memcmp(a->pub, b->pub, QK_POINT_LEN) != 0)
            return 0;
        /* Only private parts asked: two references to the same remote key. */
        if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) == OSSL_KEYMGMT_SELECT_PRIVATE_KEY && a->key_id != NULL
            && b->key_id != NULL)
            return strcmp(a->key_id, b->key_id) == 0;
    }
    return 1;
}

static int is_p256_name(const char *name)
{
    return strcasecmp(name, "prime256v1") == 0 || strcasecmp(name, "P-256") == 0
           || strcasecmp(name, "secp256r1") == 0;
}

/*
 * Public part only: a certificate's key, for EVP_PKEY_eq. This provider never holds a secret.
 */
static int km_import(void *keydata, int selection, const OSSL_PARAM params[])
{
    QK_KEY *key = keydata;
    const OSSL_PARAM *p;
    const char *group = NULL;
    const void *pub = NULL;
    size_t publen = 0;
    int ok;

    if (key == NULL || key->key_id != NULL || params == NULL)
        return 0;
    if ((selection & (OSSL_KEYMGMT_SELECT_ALL_PARAMETERS | OSSL_KEYMGMT_SELECT_PUBLIC_KEY)) == 0)
        return 0;
    /*
     * A key pair of another provider is refused rather than reduced to its public half: when
     * EVP picks this provider's ECDSA for an ordinary private key, the failed export makes it
     * fall back to the key's own provider, which can sign with it.
     */
    if (OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PRIV_KEY) != NULL)
        return 0;
    p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_GROUP_NAME);
    if (p == NULL || !OSSL_PARAM_get_utf8_string_ptr(p, &group) || !is_p256_name(group))
        return 0; /* another curve, or explicit parameters: not a key of ours */
    if (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) {
        p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PUB_KEY);
        if (p == NULL)
            p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY);
        if (p == NULL || !OSSL_PARAM_get_octet_string_ptr(p, &pub, &publen))
            return 0;
        ERR_set_mark();
        ok = qk_key_set_pub(key->provctx, key, pub, publen);
        ERR_pop_to_mark();
        return ok;
    }
    return 1;
}

static const OSSL_PARAM km_public_types[] = {
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM km_empty_types[] = { OSSL_PARAM_END };

static const OSSL_PARAM *km_import_types(int selection)
{
    return (selection & (OSSL_KEYMGMT_SELECT_ALL_PARAMETERS | OSSL_KEYMGMT_SELECT_PUBLIC_KEY)) ? km_public_types
                                                                                              : km_empty_types;
}

static int km_export(void *keydata, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
    QK_KEY *key = keydata;

    if (key == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && key->key_id != NULL) {
        QK_RAISE(key->provctx, QK_R_PRIVATE_KEY_NOT_EXPORTABLE,
                 "key '%s' is held by the quorumkey threshold signers; only its public key can be exported",
                 key->key_id);
        return 0;
    }
    if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
        selection |= OSSL_KEYMGMT_SELECT_PUBLIC_KEY; /* a public-only object: what it has */
    if ((selection & (OSSL_KEYMGMT_SELECT_ALL_PARAMETERS | OSSL_KEYMGMT_SELECT_PUBLIC_KEY)) == 0)
        return 0;
    return qk_key_export_public(key, selection, cb, cbarg);
}

static const OSSL_PARAM *km_export_types(int selection)
{
    if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
        return km_empty_types;
    return km_import_types(selection);
}

/* ---------------------------------------------------------------------------------------- */

static const OSSL_PARAM km_gettable[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_FIELD_TYPE, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_EC_P, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_EC_A, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_EC_B, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_EC_GENERATOR, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_EC_ORDER, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_EC_COFACTOR, NULL, 0),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_EC_DECODED_FROM_EXPLICIT_PARAMS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_EC_INCLUDE_PUBLIC, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_USE_COFACTOR_ECDH, NULL),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_EC_PUB_X, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_EC_PUB_Y, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *km_gettable_params(void *provctx)
{
    (void)provctx;
    return km_gettable;
}

/* Sets a BIGNUM param from 32 big-endian bytes. */
static int set_bn_bytes(OSSL_PARAM *p, const unsigned char *be, size_t len)
{
    BIGNUM *bn = BN_bin2bn(be, (int)len, NULL);
    int ok = bn != NULL && OSSL_PARAM_set_BN(p, bn);

    BN_free(bn);
    return ok;
}

typedef enum { CURVE_P, CURVE_A, CURVE_B, CURVE_ORDER, CURVE_COFACTOR } CURVE_PART;

static EC_GROUP *p256(const QK_KEY *key)
{
    return EC_GROUP_new_by_curve_name_ex(key->provctx != NULL ? key->provctx->libctx : NULL, NULL,
                                         NID_X9_62_prime256v1);
}

static int set_curve_bn(const QK_KEY *key, OSSL_PARAM *p, CURVE_PART part)
{
    EC_GROUP *group = p256(key);
    BIGNUM *pp = BN_new(), *a = BN_new(), *b = BN_new();
    const BIGNUM *v = NULL;
    int ok = 0;

    if (group == NULL || pp == NULL || a == NULL || b == NULL || !EC_GROUP_get_curve(group, pp, a, b, NULL))
        goto end;
    switch (part) {
    case CURVE_P:
        v = pp;
        break;
    case CURVE_A:
        v = a;
        break;
    case CURVE_B:
        v = b;
        break;
    case CURVE_ORDER:
        v = EC_GROUP_get0_order(group);
        break;
    case CURVE_COFACTOR:
        v = EC_GROUP_get0_cofactor(group);
        break;
    }
    ok = v != NULL && OSSL_PARAM_set_BN(p, v);
end:
    BN_free(pp);
    BN_free(a);
    BN_free(b);
    EC_GROUP_free(group);
    return ok;
}

static int set_generator(const QK_KEY *key, OSSL_PARAM *p)
{
    EC_GROUP *group = p256(key);
    unsigned char buf[QK_POINT_LEN];
    int ok = group != NULL
             && EC_POINT_point2oct(group, EC_GROUP_get0_generator(group), POINT_CONVERSION_UNCOMPRESSED, buf,
                                   sizeof(buf), NULL) == sizeof(buf)
             && OSSL_PARAM_set_octet_string(p, buf, sizeof(buf));

    EC_GROUP_free(group);
    return ok;
}

static int km_get_params(void *keydata, OSSL_PARAM params[])
{
    QK_KEY *key = keydata;
    OSSL_PARAM *p;

    if (key == NULL)
        return 0;
    if (params == NULL)
        return 1;
    for (p = params; p->key != NULL; p++) {
        const char *k = p->key;
        int ok = 1;

        if (qk_debug_enabled())
            qk_log(key->provctx, "keymgmt get_params '%s' (key %s)", k, key->key_id ? key->key_id : "(public)");
        if (strcmp(k, OSSL_PKEY_PARAM_BITS) == 0)
            ok = OSSL_PARAM_set_int(p, 256);
        else if (strcmp(k, OSSL_PKEY_PARAM_SECURITY_BITS) == 0)
            ok = OSSL_PARAM_set_int(p, 128);
        else if (strcmp(k, OSSL_PKEY_PARAM_MAX_SIZE) == 0)
            ok = OSSL_PARAM_set_int(p, QK_MAX_SIG_LEN);
        else if (strcmp(k, OSSL_PKEY_PARAM_DEFAULT_DIGEST) == 0)
            ok = OSSL_PARAM_set_utf8_string(p, "SHA256");
        else if (strcmp(k, OSSL_PKEY_PARAM_GROUP_NAME) == 0)
            ok = OSSL_PARAM_set_utf8_string(p, QK_GROUP_NAME);
        else if (strcmp(k, OSSL_PKEY_PARAM_EC_ENCODING) == 0)
            ok = OSSL_PARAM_set_utf8_string(p, OSSL_PKEY_EC_ENCODING_GROUP);
        else if (strcmp(k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT) == 0)
            ok = OSSL_PARAM_set_utf8_string(p, OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED);
        else if (strcmp(k, OSSL_PKEY_PARAM_EC_FIELD_TYPE) == 0)
            ok = OSSL_PARAM_set_utf8_string(p, SN_X9_62_prime_field);
        else if (strcmp(k, OSSL_PKEY_PARAM_EC_P) == 0)
            ok = set_curve_bn(key, p, CURVE_P);
        else if (strcmp(k, OSSL_PKEY_PARAM_EC_A) == 0)
            ok = set_curve_bn(key, p, CURVE_A);
        else if (strcmp(k, OSSL_PKEY_PARAM_EC_B) == 0)
            ok = set_curve_bn(key, p, CURVE_B);
        else if (strcmp(k, OSSL_PKEY_PARAM_EC_ORDER) == 0)
            ok = set_curve_bn(key, p, CURVE_ORDER);
        else if (strcmp(k, OSSL_PKEY_PARAM_EC_COFACTOR) == 0)
            ok = set_curve_bn(key, p, CURVE_COFACTOR);
        else if (strcmp(k, OSSL_PKEY_PARAM_EC_GENERATOR) == 0)
            ok = set_generator(key, p);
        else if (strcmp(k, OSSL_PKEY_PARAM_EC_DECODED_FROM_EXPLICIT_PARAMS) == 0)
            ok = OSSL_PARAM_set_int(p, 0);
        else if (strcmp(k, OSSL_PKEY_PARAM_EC_INCLUDE_PUBLIC) == 0)
            ok = OSSL_PARAM_set_int(p, 1);
        else if (strcmp(k, OSSL_PKEY_PARAM_USE_COFACTOR_ECDH) == 0)
            ok = OSSL_PARAM_set_int(p, 0);
        else if (strcmp(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY) == 0 || strcmp(k, OSSL_PKEY_PARAM_PUB_KEY) == 0)
            ok = key->has_pub && OSSL_PARAM_set_octet_string(p, key->pub, QK_POINT_LEN);
        else if (strcmp(k, OSSL_PKEY_PARAM_EC_PUB_X) == 0)
            ok = key->has_pub && set_bn_bytes(p, key->pub + 1, 32);
        else if (strcmp(k, OSSL_PKEY_PARAM_EC_PUB_Y) == 0)
            ok = key->has_pub && set_bn_bytes(p, key->pub + 33, 32);
        else if (strcmp(k, OSSL_PKEY_PARAM_PRIV_KEY) == 0)
            ok = 0; /* held by the signers */
        /* Anything else (e.g. mandatory-digest, dist-id): not applicable, left unset. */
        if (!ok)
            return 0;
    }
    return 1;
}

static const OSSL_PARAM km_settable[] = {
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *km_settable_params(void *provctx)
{
    (void)provctx;
    return km_settable;
}

/* Only a public-only object's key may be replaced; a reference's public key is fixed. */
static int km_set_params(void *keydata, const OSSL_PARAM params[])
{
    QK_KEY *key = keydata;
    const OSSL_PARAM *p;
    const void *pub = NULL;
    size_t publen = 0;

    if (key == NULL)
        return 0;
    if (params == NULL || (p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY)) == NULL)
        return 1;
    if (key->key_id != NULL) {
        QK_RAISE(key->provctx, QK_R_BAD_PARAMETER, "the public key of quorumkey key '%s' cannot be changed",
                 key->key_id);
        return 0;
    }
    if (!OSSL_PARAM_get_octet_string_ptr(p, &pub, &publen))
        return 0;
    return qk_key_set_pub(key->provctx, key, pub, publen);
}

static const char *km_query_operation_name(int operation_id)
{
    return operation_id == OSSL_OP_SIGNATURE ? "ECDSA" : NULL;
}

static void *km_dup(const void *keydata, int selection)
{
    return qk_key_dup(keydata, (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0);
}

const OSSL_DISPATCH qk_keymgmt_functions[] = {
    { OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))km_new },
    { OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))km_free },
    { OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))km_load },
    { OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))km_has },
    { OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))km_match },
    { OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))km_import },
    { OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))km_import_types },
    { OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))km_export },
    { OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))km_export_types },
    { OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))km_get_params },
    { OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))km_gettable_params },
    { OSSL_FUNC_KEYMGMT_SET_PARAMS, (void (*)(void))km_set_params },
    { OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS, (void (*)(void))km_settable_params },
    { OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))km_query_operation_name },
    { OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))km_dup },
    { 0, NULL }
};
