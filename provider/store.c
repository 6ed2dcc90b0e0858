/*
 * STORE for quorumkey: URIs.
 *
 *   quorumkey:ref=/absolute/path/to/key.pem
 *
 * names a key reference file (PEM "QUORUMKEY KEY" or its DER); %XX escapes are decoded in the
 * path. The store yields one object: the key (OSSL_STORE_INFO_PKEY), or, when the caller expects
 * a public key (OSSL_STORE_INFO_PUBKEY: -pubin, load_pubkey), a copy with the public key only,
 * which cannot sign. No network is involved: the coordinator is asked only to sign.
 * Example: openssl pkey -provider default -provider quorumkey -in quorumkey:ref=/etc/qk/tls.pem -pubout
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/store.h>

#include "qk.h"

#define MAX_FILE (64 * 1024)
#define SCHEME "quorumkey:"

static OSSL_FUNC_store_open_fn st_open;
static OSSL_FUNC_store_settable_ctx_params_fn st_settable_ctx_params;
static OSSL_FUNC_store_set_ctx_params_fn st_set_ctx_params;
static OSSL_FUNC_store_load_fn st_load;
static OSSL_FUNC_store_eof_fn st_eof;
static OSSL_FUNC_store_close_fn st_close;
static OSSL_FUNC_store_export_object_fn st_export_object;

typedef struct {
    QK_PROVCTX *provctx;
    char *path;
    int expect;     /* OSSL_STORE_INFO_* or 0 */
    int eof;
} QK_STORECTX;

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char *percent_decode(const char *s)
{
    size_t n = strlen(s), i, j = 0;
    char *out = OPENSSL_malloc(n + 1);

    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[j++] = s[i];
            continue;
        }
        /* "%XX", not decoding to NUL */
        if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0
            || (hexval(s[i + 1]) | hexval(s[i + 2])) == 0) {
            OPENSSL_free(out);
            return NULL;
        }
        out[j++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
        i += 2;
    }
    out[j] = '\0';
    return out;
}

static void *st_open(void *provctx, const char *uri)
{
    QK_PROVCTX *pc = provctx;
    QK_STORECTX *c;
    const char *rest;
    char *path;

    if (strncasecmp(uri, SCHEME, strlen(SCHEME)) != 0)
        return NULL;
    rest = uri + strlen(SCHEME);
    if (strncmp(rest, "ref=", 4) != 0) {
        QK_RAISE(pc, QK_R_BAD_URI, "'%s': use quorumkey:ref=/absolute/path/to/key.pem", uri);
        return NULL;
    }
    path = percent_decode(rest + 4);
    if (path == NULL || path[0] != '/') {
        QK_RAISE(pc, QK_R_BAD_URI, "'%s': the key reference path must be absolute (and %%XX escapes valid)", uri);
        OPENSSL_free(path);
        return NULL;
    }
    if ((c = OPENSSL_zalloc(sizeof(*c))) == NULL) {
        OPENSSL_free(path);
        QK_RAISE(pc, QK_R_INTERNAL, "out of memory");
        return NULL;
    }
    c->provctx = pc;
    c->path = path;
    return c;
}

static const OSSL_PARAM st_settable[] = {
    OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, NULL),
    OSSL_PARAM_END
};

static const OSSL_PARAM *st_settable_ctx_params(void *provctx)
{
    (void)provctx;
    return st_settable;
}

static int st_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    QK_STORECTX *c = vctx;
    const OSSL_PARAM *p;

    if (params == NULL)
        return 1;
    p = OSSL_PARAM_locate_const(params, OSSL_STORE_PARAM_EXPECT);
    if (p != NULL && !OSSL_PARAM_get_int(p, &c->expect))
        return 0;
    /* Search criteria (subject, issuer/serial, fingerprint, alias) do not apply: one object. */
    return 1;
}

static int read_path(QK_STORECTX *c, unsigned char **out, size_t *outlen)
{
    FILE *f = fopen(c->path, "rb");
    struct stat st;
    unsigned char *buf;
    size_t len;

    if (f == NULL) {
        QK_RAISE(c->provctx, QK_R_BAD_KEY_REFERENCE, "cannot read '%s': %s", c->path, strerror(errno));
        return 0;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > MAX_FILE) {
        QK_RAISE(c->provctx, QK_R_BAD_KEY_REFERENCE, "'%s' is not a key reference file (1 byte .. 64 KiB)", c->path);
        fclose(f);
        return 0;
    }
    if ((buf = OPENSSL_malloc((size_t)st.st_size + 1)) == NULL) {
        fclose(f);
        QK_RAISE(c->provctx, QK_R_INTERNAL, "out of memory");
        return 0;
    }
    len = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 1;
}

static int st_load(void *vctx, OSSL_CALLBACK *object_cb, void *object_cbarg, OSSL_PASSPHRASE_CALLBACK *pw_cb,
                   void *pw_cbarg)
{
    QK_STORECTX *c = vctx;
    unsigned char *text = NULL, *der = NULL;
    size_t len = 0, derlen = 0;
    QK_KEY *key = NULL;
    QK_OBJREF ref;
    int objtype = OSSL_OBJECT_PKEY, r, ok = 0;
    char desc[256];
    OSSL_PARAM params[5];

    (void)pw_cb;
    (void)pw_cbarg;
    if (c->eof)
        return 0;
    c->eof = 1;
    if (c->expect != 0 && c->expect != OSSL_STORE_INFO_PKEY && c->expect != OSSL_STORE_INFO_PUBKEY)
        return 1; /* no certificates, CRLs or parameters here */
    if (!read_path(c, &text, &len))
        return 0;
    r = qk_keyref_pem_to_der(c->provctx, text, len, c->path, &der, &derlen);
    if (r < 0)
        goto end;
    key = r > 0 ? qk_keyref_from_der(c->provctx, der, derlen, c->path)
                : qk_keyref_from_der(c->provctx, text, len, c->path);
    if (key == NULL)
        goto end;
    snprintf(desc, sizeof(desc), "quorumkey key '%s' via %s%s", key->key_id, key->endpoint,
             c->expect == OSSL_STORE_INFO_PUBKEY ? " (public key)" : "");
    if (c->expect == OSSL_STORE_INFO_PUBKEY && (key = qk_key_to_public(key)) == NULL)
        goto end;
    memset(&ref, 0, sizeof(ref));
    ref.magic = QK_OBJREF_MAGIC;
    ref.version = 1;
    ref.key = key;
    params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &objtype);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, (char *)"EC", 0);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &ref, sizeof(ref));
    params[3] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DESC, desc, 0);
    params[4] = OSSL_PARAM_construct_end();
    ok = object_cb(params, object_cbarg);
end:
    qk_key_free(key);
    OPENSSL_free(der);
    OPENSSL_free(text);
    return ok;
}

static int st_eof(void *vctx)
{
    return ((QK_STORECTX *)vctx)->eof;
}

static int st_close(void *vctx)
{
    QK_STORECTX *c = vctx;

    OPENSSL_free(c->path);
    OPENSSL_free(c);
    return 1;
}

/* Refused, so that OpenSSL loads the key into our keymgmt rather than a public-only copy elsewhere. */
static int st_export_object(void *vctx, const void *objref, size_t objref_sz, OSSL_CALLBACK *export_cb,
                            void *export_cbarg)
{
    (void)vctx;
    (void)objref;
    (void)objref_sz;
    (void)export_cb;
    (void)export_cbarg;
    return 0;
}

const OSSL_DISPATCH qk_store_functions[] = {
    { OSSL_FUNC_STORE_OPEN, (void (*)(void))st_open },
    { OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS, (void (*)(void))st_settable_ctx_params },
    { OSSL_FUNC_STORE_SET_CTX_PARAMS, (void (*)(void))st_set_ctx_params },
    { OSSL_FUNC_STORE_LOAD, (void (*)(void))st_load },
    { OSSL_FUNC_STORE_EOF, (void (*)(void))st_eof },
    { OSSL_FUNC_STORE_CLOSE, (void (*)(void))st_close },
    { OSSL_FUNC_STORE_EXPORT_OBJECT, (void (*)(void))st_export_object },
    { 0, NULL }
};
