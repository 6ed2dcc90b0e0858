/*
 * qk-load-check /abs/KEYREF.pem CERT_THEN_KEY.pem: which kind of key each way of loading a quorumkey
 * key reference gives, through the public OpenSSL API (OPENSSL_CONF loads the provider).
 *
 *  - PEM_read_bio_PUBKEY, and an OSSL_STORE that expects a public key (quorumkey: URI), give a
 *    key without a private part: EVP_PKEY_todata(KEYPAIR) has no "priv", and signing fails;
 *  - PEM_read_bio_PrivateKey, and the store expecting a private key, give a key that signs
 *    (through the cluster), and the public-only key verifies that signature;
 *  - PEM_read_bio_PrivateKey on a file holding a certificate and then the key reference (what
 *    nginx does with ssl_certificate_key) finds the key and signs;
 *  - the keymgmt takes NULL parameter arrays (EVP_PKEY_get_params / set_params pass them on).
 *
 * The key's policy must allow raw-digest (prehashed EVP_PKEY_sign). One line per check; exit 0
 * and "OK" when all are as expected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/store.h>

static unsigned char dgst[32];
static int failed;

static void check(int ok, const char *what, const char *detail)
{
    printf("%s: %s%s%s\n", what, ok ? "ok" : "FAIL", detail[0] != '\0' ? ", " : "", detail);
    if (!ok)
        failed = 1;
}

/* The reason of the last error in the queue ("" if none), and the queue emptied. */
static const char *last_reason(void)
{
    static char buf[256];
    unsigned long err = ERR_peek_last_error();

    buf[0] = '\0';
    if (err != 0)
        ERR_error_string_n(err, buf, sizeof(buf));
    ERR_clear_error();
    return buf;
}

static int sign(EVP_PKEY *key, unsigned char *sig, size_t *siglen)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    int ok = ctx != NULL && EVP_PKEY_sign_init(ctx) > 0 && EVP_PKEY_sign(ctx, sig, siglen, dgst, sizeof(dgst)) > 0;

    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static int verify(EVP_PKEY *key, const unsigned char *sig, size_t siglen)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    int ok = ctx != NULL && EVP_PKEY_verify_init(ctx) > 0 && EVP_PKEY_verify(ctx, sig, siglen, dgst, sizeof(dgst)) == 1;

    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/* A key without a private part: exporting the key pair yields no "priv", and it cannot sign. */
static void check_public_only(EVP_PKEY *key, const char *what)
{
    OSSL_PARAM *params = NULL;
    unsigned char sig[80];
    size_t siglen = sizeof(sig);
    char line[512];
    int has_priv, signed_ok;

    if (key == NULL) {
        check(0, what, last_reason());
        return;
    }
    has_priv = EVP_PKEY_todata(key, EVP_PKEY_KEYPAIR, &params) <= 0
               || OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_PRIV_KEY) != NULL;
    OSSL_PARAM_free(params);
    ERR_clear_error();
    signed_ok = sign(key, sig, &siglen);
    snprintf(line, sizeof(line), "%s, %s (%s)", has_priv ? "exports a private part or refuses" : "public key only",
             signed_ok ? "SIGNED" : "cannot sign", last_reason());
    check(!has_priv && !signed_ok, what, line);
}

/* A key that signs; the signature verifies under `pub`. */
static void check_signs(EVP_PKEY *key, EVP_PKEY *pub, const char *what)
{
    unsigned char sig[80];
    size_t siglen = sizeof(sig);
    int ok = key != NULL && sign(key, sig, &siglen);

    if (!ok) {
        check(0, what, last_reason());
        return;
    }
    check(pub != NULL && verify(pub, sig, siglen), what, "signed, verified with the public-only key");
}

static EVP_PKEY *read_pem(const char *path, int public_only)
{
    BIO *in = BIO_new_file(path, "r");
    EVP_PKEY *key = NULL;

    if (in != NULL)
        key = public_only ? PEM_read_bio_PUBKEY(in, NULL, NULL, NULL) : PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
    BIO_free(in);
    return key;
}

static const char *type_name(int type)
{
    const char *name = type != 0 ? OSSL_STORE_INFO_type_string(type) : NULL;

    return name != NULL ? name : "nothing loaded";
}

/* The first object of `expect` type in the quorumkey: store for `path`; *type its info type. */
static EVP_PKEY *from_store(const char *path, int expect, int *type)
{
    char uri[4096];
    OSSL_STORE_CTX *store;
    OSSL_STORE_INFO *info;
    EVP_PKEY *key = NULL;

    *type = 0;
    snprintf(uri, sizeof(uri), "quorumkey:ref=%s", path);
    if ((store = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL)) == NULL)
        return NULL;
    if (OSSL_STORE_expect(store, expect) && (info = OSSL_STORE_load(store)) != NULL) {
        *type = OSSL_STORE_INFO_get_type(info);
        key = *type == OSSL_STORE_INFO_PUBKEY ? OSSL_STORE_INFO_get1_PUBKEY(info)
              : *type == OSSL_STORE_INFO_PKEY ? OSSL_STORE_INFO_get1_PKEY(info)
                                              : NULL;
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(store);
    return key;
}

int main(int argc, char **argv)
{
    EVP_PKEY *pub, *priv, *store_pub, *store_priv, *combined;
    const char *abs = argc == 3 ? argv[1] : "";
    int type;

    /* The store's URIs take absolute paths only. */
    if (argc != 3 || abs[0] != '/' || strlen(abs) > 4000) {
        fprintf(stderr, "usage: %s /abs/KEYREF.pem CERT_THEN_KEY.pem\n", argv[0]);
        return 2;
    }
    EVP_Digest("qk-load-check", 13, dgst, NULL, EVP_sha256(), NULL);

    pub = read_pem(argv[1], 1);
    check_public_only(pub, "PEM_read_bio_PUBKEY");
    store_pub = from_store(abs, OSSL_STORE_INFO_PUBKEY, &type);
    check(type == OSSL_STORE_INFO_PUBKEY, "store expecting PUBKEY: info type", type_name(type));
    check_public_only(store_pub, "store expecting PUBKEY");

    priv = read_pem(argv[1], 0);
    check_signs(priv, pub, "PEM_read_bio_PrivateKey");
    store_priv = from_store(abs, OSSL_STORE_INFO_PKEY, &type);
    check(type == OSSL_STORE_INFO_PKEY, "store expecting PKEY: info type", type_name(type));
    check_signs(store_priv, store_pub, "store expecting PKEY");
    combined = read_pem(argv[2], 0);
    check_signs(combined, pub, "PEM_read_bio_PrivateKey, certificate first");
    check(priv != NULL && pub != NULL && EVP_PKEY_get_params(priv, NULL) == 1 && EVP_PKEY_set_params(pub, NULL) == 1,
          "NULL params", "get_params and set_params accept them");

    EVP_PKEY_free(pub);
    EVP_PKEY_free(priv);
    EVP_PKEY_free(store_pub);
    EVP_PKEY_free(store_priv);
    EVP_PKEY_free(combined);
    printf("%s\n", failed ? "FAILED" : "OK");
    return failed;
}
