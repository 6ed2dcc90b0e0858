/*
 * DECODERs for the key reference file (DESIGN §8): nginx (ssl_certificate_key), HAProxy and
 * `openssl ... -key key.pem` read it through OSSL_DECODER (PEM_read_bio_PrivateKey) or the
 * file: OSSL_STORE.
 *
 *  "DER" input=pem          the one PEM block at the input's position, if its label is
 *                           QUORUMKEY KEY → DER (structure "quorumkey"). Any other block is left
 *                           alone, so a file holding a certificate and a key reference works with
 *                           every command; a broken QUORUMKEY KEY block is an error that names
 *                           what is wrong.
 *  "EC"  input=der,         one DER key reference → key object, handed over as an OSSL_OBJECT
 *        structure=quorumkey  reference to our keymgmt's load(). Silent on DER that is not
 *                           shaped like a key reference. A selection without the private key
 *                           (PEM_read_bio_PUBKEY, -pubin) gets the public key only: it cannot sign.
 *
 * Each reads exactly one object, no further: the file: store decodes the next object from where
 * the previous one ended, and OpenSSL rewinds the input after a decoder that found nothing.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include "qk.h"

/* A key reference is a few hundred bytes (with mTLS paths a little more). */
#define QK_MAX_DECODE_INPUT (64 * 1024)
#define PEM_BEGIN_ANY "-----BEGIN "
#define PEM_END_ANY "-----END "
#define PEM_BEGIN_OURS "-----BEGIN " QK_PEM_LABEL "-----"

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

/* Does `line` (one line, maybe with its line ending) say exactly "-----BEGIN QUORUMKEY KEY-----"? */
static int is_our_begin_line(const char *line)
{
    size_t n = strlen(line), want = strlen(PEM_BEGIN_OURS);

    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
    return n == want && memcmp(line, PEM_BEGIN_OURS, want) == 0;
}

/* Appends to a growing buffer capped at QK_MAX_DECODE_INPUT; 0 when the cap is passed. */
static int append(unsigned char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    unsigned char *tmp;

    if (*len + n > QK_MAX_DECODE_INPUT)
        return 0;
    if (*len + n + 1 > *cap) {
        size_t want = *cap == 0 ? 1024 : *cap;

        while (want < *len + n + 1)
            want *= 2;
        if ((tmp = OPENSSL_realloc(*buf, want)) == NULL)
            return 0;
        *buf = tmp;
        *cap = want;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 1;
}

/*
 * Reads the first PEM block from the input's position, line by line (as PEM_read_bio does: text
 * before it is skipped). 0: no block, or another label (nothing taken; OpenSSL rewinds the input);
 * 1: our block up to its END line in *text; -1: error raised.
 */
static int read_our_pem_block(QK_PROVCTX *pc, OSSL_CORE_BIO *cin, unsigned char **text, size_t *textlen)
{
    char line[256];
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    int n, line_start = 1;

    *text = NULL;
    *textlen = 0;
    for (;;) {
        if ((n = qk_core_bio_gets(pc, cin, line, sizeof(line))) <= 0)
            return 0;
        if (line_start && strncmp(line, PEM_BEGIN_ANY, strlen(PEM_BEGIN_ANY)) == 0)
            break;
        line_start = line[n - 1] == '\n';
    }
    if (!is_our_begin_line(line))
        return 0;
    /* Our block: everything up to the first END line (qk_keyref_pem_to_der checks its label). */
    line_start = 1;
    do {
        if (!append(&buf, &len, &cap, line, (size_t)n)) {
            OPENSSL_free(buf);
            QK_RAISE(pc, QK_R_BAD_KEY_REFERENCE, "key reference PEM: block larger than %d bytes",
                     QK_MAX_DECODE_INPUT);
            return -1;
        }
        if (line_start && strncmp(line, PEM_END_ANY, strlen(PEM_END_ANY)) == 0)
            break;
        line_start = line[n - 1] == '\n';
    } while ((n = qk_core_bio_gets(pc, cin, line, sizeof(line))) > 0);
    *text = buf;
    *textlen = len;
    return 1;
}

static int dec_pem_decode(void *vctx, OSSL_CORE_BIO *cin, int selection, OSSL_CALLBACK *data_cb, void *data_cbarg,
                          OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    QK_DECCTX *c = vctx;
    unsigned char *text = NULL, *der = NULL;
    size_t len = 0, derlen = 0;
    QK_KEY *key;
    int r, ok, objtype = OSSL_OBJECT_PKEY;
    OSSL_PARAM params[4];

    (void)selection;
    (void)pw_cb;
    (void)pw_cbarg;
    r = read_our_pem_block(c->provctx, cin, &text, &len);
    if (r == 0)
        return 1; /* not ours: empty-handed, not an error */
    if (r < 0)
        return 0;
    r = qk_keyref_pem_to_der(c->provctx, text, len, "key reference PEM", &der, &derlen);
    OPENSSL_free(text);
    if (r <= 0)
        return 0; /* it started like ours: its error is the one to report */
    /*
     * Validate it all here, where an error still reaches the caller: later steps (the file:
     * store's DER-to-object hand-over) try several decoders and drop their errors.
     */
    if ((key = qk_keyref_from_der(c->provctx, der, derlen, "key reference")) == NULL) {
        OPENSSL_free(der);
        return 0;
    }
    qk_key_free(key);
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, der, derlen);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE, (char *)QK_DER_STRUCTURE, 0);
    params[2] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &objtype);
    params[3] = OSSL_PARAM_construct_end();
    ok = data_cb(params, data_cbarg);
    OPENSSL_free(der);
    return ok;
}

/*
 * Reads one DER SEQUENCE (header, then exactly its length) if the input starts with one of at
 * most QK_MAX_DECODE_INPUT bytes. 1 with it in *der; 0: not a key reference (nothing kept).
 */
static int read_one_sequence(QK_PROVCTX *pc, OSSL_CORE_BIO *cin, unsigned char **der, size_t *derlen)
{
    unsigned char hdr[4];
    size_t hdrlen = 2, bodylen, i;
    unsigned char *buf;

    *der = NULL;
    if (!qk_core_bio_read(pc, cin, hdr, 2) || hdr[0] != 0x30)
        return 0;
    if (hdr[1] < 0x80) {
        bodylen = hdr[1];
    } else {
        size_t n = hdr[1] & 0x7f;

        if (n < 1 || n > 2 || !qk_core_bio_read(pc, cin, hdr + 2, n))
            return 0;
        hdrlen += n;
        for (bodylen = 0, i = 0; i < n; i++)
            bodylen = (bodylen << 8) | hdr[2 + i];
    }
    if (hdrlen + bodylen > QK_MAX_DECODE_INPUT || (buf = OPENSSL_malloc(hdrlen + bodylen)) == NULL)
        return 0;
    memcpy(buf, hdr, hdrlen);
    if (!qk_core_bio_read(pc, cin, buf + hdrlen, bodylen)) {
        OPENSSL_free(buf);
        return 0;
    }
    *der = buf;
    *derlen = hdrlen + bodylen;
    return 1;
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

    (void)pw_cb;
    (void)pw_cbarg;
    if (!read_one_sequence(c->provctx, cin, &der, &len))
        return 1; /* some other input: not ours */
    if (!qk_keyref_looks_like(der, len)) {
        OPENSSL_free(der);
        return 1;
    }
    key = qk_keyref_from_der(c->provctx, der, len, "key reference");
    OPENSSL_free(der);
    if (key == NULL)
        return 0;
    /* Asked for the public key (and parameters) only: a copy without the reference, which cannot sign. */
    if (selection != 0 && (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) == 0 && (key = qk_key_to_public(key)) == NULL)
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
