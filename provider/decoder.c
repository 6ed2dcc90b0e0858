/*
 * DECODERs for the key reference file (DESIGN §8): nginx (ssl_certificate_key), HAProxy and
 * `openssl ... -key key.pem` read it through OSSL_DECODER (PEM_read_bio_PrivateKey) or the
 * file: OSSL_STORE.
 *
 *  "DER" input=pem          -----BEGIN QUORUMKEY KEY----- → DER. Silent on any other PEM (so
 *                           other decoders carry on); a broken QUORUMKEY KEY block is an error
 *                           that names what is wrong.
 *  "EC"  input=der,         DER key reference → key object, handed over as an OSSL_OBJECT
 *        structure=quorumkey  reference to our keymgmt's load(). Silent on DER that is not
 *                           shaped like a key reference.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include "qk.h"

/* A key reference is a few hundred bytes (with mTLS paths a little more). */
#define QK_MAX_DECODE_INPUT (64 * 1024)

static OSSL_FUNC_decoder_newctx_fn dec_newctx;
static OSSL_FUNC_decoder_freectx_fn dec_freectx;
static OSSL_FUNC_decoder_does_selection_fn dec_does_selection;
static OSSL_FUNC_decoder_decode_fn dec_pem_decode;
static OSSL_FUNC_decoder_decode_fn dec_der_decode;
static OSSL_FUNC_decoder_export_object_fn dec_export_object;

typedef struct {
    QK_PROVCTX *provctx;
} QK_DECCTX;

static void *dec_newctx(void *provctx)
{
    QK_DECCTX *c = OPENSSL_zalloc(sizeof(*c));

    if (c != NULL)
        c->provctx = provctx;
    return c;
}

static void dec_freectx(void *vctx)
{
    OPENSSL_free(vctx);
}

static int dec_does_selection(void *provctx, int selection)
{
    (void)provctx;
    /* A key reference gives a key with its public part and a (remote) private part. */
    (void)selection;
    return 1;
}

static int dec_pem_decode(void *vctx, OSSL_CORE_BIO *cin, int selection, OSSL_CALLBACK *data_cb, void *data_cbarg,
                          OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    QK_DECCTX *c = vctx;
    unsigned char *text = NULL, *der = NULL;
    size_t len = 0, derlen = 0;
    int r, ok;
    OSSL_PARAM params[2];

    (void)selection;
    (void)pw_cb;
    (void)pw_cbarg;
    if (!qk_core_bio_read_all(c->provctx, cin, &text, &len, QK_MAX_DECODE_INPUT))
        return 0;
    r = qk_keyref_pem_to_der(c->provctx, text, len, "key reference PEM", &der, &derlen);
    OPENSSL_free(text);
    if (r == 0)
        return 1; /* not ours: empty-handed, not an error */
    if (r < 0)
        return 0;
    /*
     * Validate it all here, where an error still reaches the caller: later steps (the file:
     * store's DER-to-object hand-over) try several decoders and drop their errors.
     */
    {
        QK_KEY *key = qk_keyref_from_der(c->provctx, der, derlen, "key reference");

        if (key == NULL) {
            OPENSSL_free(der);
            return 0;
        }
        qk_key_free(key);
    }
    /* No data type or structure: OpenSSL's generic DER steps (file: store) must be able to take it. */
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, der, derlen);
    params[1] = OSSL_PARAM_construct_end();
    ok = data_cb(params, data_cbarg);
    OPENSSL_free(der);
    return ok;
}

static int dec_der_decode(void *vctx, OSSL_CORE_BIO *cin, int selection, OSSL_CALLBACK *data_cb, void *data_cbarg,
                          OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    QK_DECCTX *c = vctx;
    unsigned char *der = NULL;
    size_t len = 0;
    QK_KEY *key;
    QK_OBJREF ref;
    int objtype = OSSL_OBJECT_PKEY, ok;
    OSSL_PARAM params[4];

    (void)selection;
    (void)pw_cb;
    (void)pw_cbarg;
    if (!qk_core_bio_read_all(c->provctx, cin, &der, &len, QK_MAX_DECODE_INPUT))
        return 0;
    if (!qk_keyref_looks_like(der, len)) {
        OPENSSL_free(der);
        return 1; /* some other DER: not ours */
    }
    key = qk_keyref_from_der(c->provctx, der, len, "key reference");
    OPENSSL_free(der);
    if (key == NULL)
        return 0;
    memset(&ref, 0, sizeof(ref));
    ref.magic = QK_OBJREF_MAGIC;
    ref.version = 1;
    ref.key = key;
    params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &objtype);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, (char *)"EC", 0);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &ref, sizeof(ref));
    params[3] = OSSL_PARAM_construct_end();
    ok = data_cb(params, data_cbarg);
    /* load() took its own reference if the key was used. */
    qk_key_free(key);
    return ok;
}

/*
 * Another provider's keymgmt asking for our object: refused, so that nobody ends up with a
 * public-only copy where a signing key was expected (OpenSSL then uses our keymgmt's load()).
 */
static int dec_export_object(void *vctx, const void *objref, size_t objref_sz, OSSL_CALLBACK *export_cb,
                             void *export_cbarg)
{
    (void)vctx;
    (void)objref;
    (void)objref_sz;
    (void)export_cb;
    (void)export_cbarg;
    return 0;
}

const OSSL_DISPATCH qk_decoder_pem_functions[] = {
    { OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))dec_newctx },
    { OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx },
    { OSSL_FUNC_DECODER_DOES_SELECTION, (void (*)(void))dec_does_selection },
    { OSSL_FUNC_DECODER_DECODE, (void (*)(void))dec_pem_decode },
    { 0, NULL }
};

const OSSL_DISPATCH qk_decoder_der_functions[] = {
    { OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))dec_newctx },
    { OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx },
    { OSSL_FUNC_DECODER_DOES_SELECTION, (void (*)(void))dec_does_selection },
    { OSSL_FUNC_DECODER_DECODE, (void (*)(void))dec_der_decode },
    { OSSL_FUNC_DECODER_EXPORT_OBJECT, (void (*)(void))dec_export_object },
    { 0, NULL }
};
