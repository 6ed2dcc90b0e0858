/*
 * Key objects and the key reference (src/keyref/keyref.ts):
 *
 *   -----BEGIN QUORUMKEY KEY-----  around the DER of
 *   QuorumkeyKeyReference ::= SEQUENCE {
 *     version    INTEGER (1),
 *     keyId      UTF8String,            -- ^[A-Za-z0-9._-]{1,64}$
 *     endpoint   UTF8String,            -- "unix:/abs/path.sock" or "host:port" (TCP + mTLS)
 *     publicKey  SubjectPublicKeyInfo,  -- P-256
 *     tls        [0] IMPLICIT SEQUENCE { caFile, certFile, keyFile UTF8String } OPTIONAL }
 *
 * Parsed with a small strict DER reader: definite minimal lengths, every byte consumed.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>

#include "qk.h"

#define MAX_TLS_FILE (1024 * 1024)

/* ---------------------------------------------------------------------------------------- */
/* Key objects */

QK_KEY *qk_key_new(QK_PROVCTX *ctx)
{
    QK_KEY *key = OPENSSL_zalloc(sizeof(*key));

    if (key == NULL) {
        QK_RAISE(ctx, QK_R_INTERNAL, "out of memory");
        return NULL;
    }
    atomic_init(&key->refcnt, 1);
    key->provctx = ctx;
    return key;
}

QK_KEY *qk_key_up_ref(QK_KEY *key)
{
    if (key != NULL)
        atomic_fetch_add(&key->refcnt, 1);
    return key;
}

void qk_key_free(QK_KEY *key)
{
    if (key == NULL || atomic_fetch_sub(&key->refcnt, 1) != 1)
        return;
    OPENSSL_free(key->key_id);
    OPENSSL_free(key->endpoint);
    OPENSSL_free(key->ca_file);
    OPENSSL_free(key->cert_file);
    OPENSSL_free(key->key_file);
    OPENSSL_free(key->ca_pem);
    OPENSSL_free(key->cert_pem);
    /* The mTLS client key of the provider's connection to the coordinator. */
    OPENSSL_clear_free(key->key_pem, key->key_pem_len);
    OPENSSL_free(key);
}

static int dup_str(char **dst, const char *src)
{
    if (src == NULL)
        return 1;
    *dst = OPENSSL_strdup(src);
    return *dst != NULL;
}

static int dup_mem(unsigned char **dst, size_t *dstlen, const unsigned char *src, size_t len)
{
    if (src == NULL)
        return 1;
    *dst = OPENSSL_memdup(src, len);
    *dstlen = len;
    return *dst != NULL;
}

QK_KEY *qk_key_dup(const QK_KEY *src, int with_reference)
{
    QK_KEY *key;

    if (src == NULL)
        return NULL;
    if ((key = qk_key_new(src->provctx)) == NULL)
        return NULL;
    key->has_pub = src->has_pub;
    memcpy(key->pub, src->pub, sizeof(key->pub));
    if (with_reference
        && (!dup_str(&key->key_id, src->key_id) || !dup_str(&key->endpoint, src->endpoint)
            || !dup_str(&key->ca_file, src->ca_file) || !dup_str(&key->cert_file, src->cert_file)
            || !dup_str(&key->key_file, src->key_file)
            || !dup_mem(&key->ca_pem, &key->ca_pem_len, src->ca_pem, src->ca_pem_len)
            || !dup_mem(&key->cert_pem, &key->cert_pem_len, src->cert_pem, src->cert_pem_len)
            || !dup_mem(&key->key_pem, &key->key_pem_len, src->key_pem, src->key_pem_len))) {
        QK_RAISE(src->provctx, QK_R_INTERNAL, "out of memory");
        qk_key_free(key);
        return NULL;
    }
    return key;
}

QK_KEY *qk_key_to_public(QK_KEY *key)
{
    QK_KEY *pub = qk_key_dup(key, 0);

    qk_key_free(key);
    return pub;
}

/* Validates a P-256 point (any SEC1 encoding) and stores it uncompressed. */
int qk_key_set_pub(QK_PROVCTX *ctx, QK_KEY *key, const unsigned char *point, size_t len)
{
    EC_GROUP *group = EC_GROUP_new_by_curve_name_ex(ctx != NULL ? ctx->libctx : NULL, NULL, NID_X9_62_prime256v1);
    EC_POINT *pt = NULL;
    int ok = 0;

    if (group == NULL || (pt = EC_POINT_new(group)) == NULL) {
        QK_RAISE(ctx, QK_R_INTERNAL, "cannot set up P-256");
        goto end;
    }
    ERR_set_mark();
    if (len == 0 || !EC_POINT_oct2point(group, pt, point, len, NULL) || EC_POINT_is_at_infinity(group, pt)
        || EC_POINT_is_on_curve(group, pt, NULL) != 1) {
        ERR_pop_to_mark();
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "public key is not a valid P-256 point (%zu bytes)", len);
        goto end;
    }
    ERR_pop_to_mark();
    if (EC_POINT_point2oct(group, pt, POINT_CONVERSION_UNCOMPRESSED, key->pub, sizeof(key->pub), NULL)
        != QK_POINT_LEN) {
        QK_RAISE(ctx, QK_R_INTERNAL, "cannot encode the public key");
        goto end;
    }
    key->has_pub = 1;
    ok = 1;
end:
    EC_POINT_free(pt);
    EC_GROUP_free(group);
    return ok;
}

int qk_key_export_public(const QK_KEY *key, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
    OSSL_PARAM params[5], *p = params;
    int with_params = (selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS) != 0;
    int with_pub = (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0;

    if (with_pub && !key->has_pub)
        return 0;
    /* The group travels with the public key: an EC public key means nothing without it. */
    if (with_params || with_pub) {
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)QK_GROUP_NAME, 0);
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING,
                                                (char *)OSSL_PKEY_EC_ENCODING_GROUP, 0);
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                                (char *)OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED, 0);
    }
    if (with_pub)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)key->pub, QK_POINT_LEN);
    *p = OSSL_PARAM_construct_end();
    return cb(params, cbarg);
}

QK_KEY *qk_objref_key(const void *ref, size_t ref_sz)
{
    QK_OBJREF r;

    if (ref == NULL || ref_sz != sizeof(QK_OBJREF))
        return NULL;
    memcpy(&r, ref, sizeof(r));
    if (r.magic != QK_OBJREF_MAGIC || r.version != 1)
        return NULL;
    return r.key;
}

/* ---------------------------------------------------------------------------------------- */
/* Strict DER reader */

typedef struct {
    unsigned tag;
    const unsigned char *start;   /* tag byte */
    const unsigned char *content;
    size_t len;                   /* content length */
    size_t total;                 /* tag + length + content */
} TLV;

/* 1 ok, 0 malformed; `why` says what. */
static int der_read(const unsigned char *p, size_t avail, TLV *t, const char **why)
{
    size_t len, hdr = 2, n, i;

    if (avail < 2) {
        *why = "truncated header";
        return 0;
    }
    t->tag = p[0];
    if ((t->tag & 0x1f) == 0x1f) {
        *why = "unexpected high tag number";
        return 0;
    }
    len = p[1];
    if (len & 0x80) {
        n = len & 0x7f;
        if (n == 0) {
            *why = "indefinite length (not DER)";
            return 0;
        }
        if (n > 4) {
            *why = "length too large";
            return 0;
        }
        if (avail < 2 + n) {
            *why = "truncated length";
            return 0;
        }
        if (p[2] == 0) {
            *why = "non-minimal length";
            return 0;
        }
        len = 0;
        for (i = 0; i < n; i++)
            len = (len << 8) | p[2 + i];
        if (len < 0x80) {
            *why = "non-minimal length";
            return 0;
        }
        hdr += n;
    }
    if (len > avail - hdr) {
        *why = "truncated content";
        return 0;
    }
    t->start = p;
    t->content = p + hdr;
    t->len = len;
    t->total = hdr + len;
    return 1;
}

static int valid_key_id(const unsigned char *s, size_t len)
{
    size_t i;

    if (len < 1 || len > 64)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_'
              || c == '-'))
            return 0;
    }
    return 1;
}

static int printable(const unsigned char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

/* "unix:/abs/path" (fits sockaddr_un) or "host:port". */
static int valid_endpoint(const char *e, int *is_unix)
{
    const char *colon;
    size_t i, hostlen;
    long port = 0;

    if (strncmp(e, "unix:/", 6) == 0) {
        *is_unix = 1;
        return strlen(e + 5) < 108;
    }
    *is_unix = 0;
    colon = strrchr(e, ':');
    if (colon == NULL || colon == e)
        return 0;
    hostlen = (size_t)(colon - e);
    for (i = 0; i < hostlen; i++) {
        char c = e[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return 0;
    }
    if (colon[1] == '\0' || strlen(colon + 1) > 5)
        return 0;
    for (i = 1; colon[i] != '\0'; i++) {
        if (colon[i] < '0' || colon[i] > '9')
            return 0;
        port = port * 10 + (colon[i] - '0');
    }
    return port >= 1 && port <= 65535;
}

static char *utf8_field(QK_PROVCTX *ctx, const TLV *t, const char *what, const char *origin)
{
    char *s;

    if (t->tag != 0x0c) {
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: %s is not a UTF8String", origin, what);
        return NULL;
    }
    if (t->len == 0 || memchr(t->content, 0, t->len) != NULL || !printable(t->content, t->len)) {
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: %s is empty or has control characters", origin, what);
        return NULL;
    }
    s = OPENSSL_strndup((const char *)t->content, t->len);
    if (s == NULL)
        QK_RAISE(ctx, QK_R_INTERNAL, "out of memory");
    return s;
}

static const unsigned char OID_EC_PUBLIC_KEY[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
static const unsigned char OID_PRIME256V1[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };

/* Short name of an OID TLV, for messages. */
static void oid_name(const TLV *oid, char *buf, size_t size)
{
    const unsigned char *p = oid->start;
    ASN1_OBJECT *obj;

    snprintf(buf, size, "unknown");
    ERR_set_mark();
    obj = d2i_ASN1_OBJECT(NULL, &p, (long)oid->total);
    if (obj != NULL) {
        int nid = OBJ_obj2nid(obj);
        if (nid != NID_undef)
            snprintf(buf, size, "%s", OBJ_nid2sn(nid));
        else
            OBJ_obj2txt(buf, (int)size, obj, 1);
        ASN1_OBJECT_free(obj);
    }
    ERR_pop_to_mark();
}

/* SubjectPublicKeyInfo of a P-256 key → key->pub. */
static int parse_spki(QK_PROVCTX *ctx, QK_KEY *key, const TLV *spki, const char *origin)
{
    TLV alg, bits, oid, curve;
    const char *why = "";
    const unsigned char *p = spki->content;
    size_t left = spki->len;
    char name[80];

    if (spki->tag != 0x30 || !der_read(p, left, &alg, &why) || alg.tag != 0x30)
        goto bad;
    p += alg.total;
    left -= alg.total;
    if (!der_read(p, left, &bits, &why) || bits.tag != 0x03 || bits.total != left)
        goto bad;
    if (!der_read(alg.content, alg.len, &oid, &why) || oid.tag != 0x06)
        goto bad;
    if (oid.len != sizeof(OID_EC_PUBLIC_KEY) || memcmp(oid.content, OID_EC_PUBLIC_KEY, oid.len) != 0) {
        oid_name(&oid, name, sizeof(name));
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: public key algorithm is %s, not an EC key on P-256", origin,
                 name);
        return 0;
    }
    if (!der_read(alg.content + oid.total, alg.len - oid.total, &curve, &why))
        goto bad;
    if (curve.tag != 0x06 || oid.total + curve.total != alg.len) {
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: EC public key without a named curve (P-256 required)", origin);
        return 0;
    }
    if (curve.len != sizeof(OID_PRIME256V1) || memcmp(curve.content, OID_PRIME256V1, curve.len) != 0) {
        oid_name(&curve, name, sizeof(name));
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: public key is on curve %s; quorumkey keys are P-256 (prime256v1)",
                 origin, name);
        return 0;
    }
    if (bits.len < 2 || bits.content[0] != 0) {
        why = "malformed BIT STRING";
        goto bad;
    }
    if (!qk_key_set_pub(ctx, key, bits.content + 1, bits.len - 1)) {
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: invalid public key", origin);
        return 0;
    }
    return 1;
bad:
    QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: malformed SubjectPublicKeyInfo (%s)", origin, why);
    return 0;
}

static int read_file(QK_PROVCTX *ctx, const char *path, const char *what, const char *origin, unsigned char **out,
                     size_t *outlen)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t len = 0;
    struct stat st;

    if (f == NULL) {
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: cannot read %s '%s': %s", origin, what, path, strerror(errno));
        return 0;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > MAX_TLS_FILE) {
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: %s '%s' is not a regular file of 1 byte to 1 MiB", origin, what,
                 path);
        fclose(f);
        return 0;
    }
    buf = OPENSSL_malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        fclose(f);
        QK_RAISE(ctx, QK_R_INTERNAL, "out of memory");
        return 0;
    }
    len = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (len != (size_t)st.st_size) {
        OPENSSL_clear_free(buf, (size_t)st.st_size + 1);
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: short read of %s '%s'", origin, what, path);
        return 0;
    }
    buf[len] = '\0';   /* gRPC takes PEM as C strings */
    *out = buf;
    *outlen = len + 1;
    return 1;
}

int qk_keyref_looks_like(const unsigned char *der, size_t len)
{
    TLV outer, version, id, endpoint;
    const char *why;
    const unsigned char *p;
    size_t left;

    if (!der_read(der, len, &outer, &why) || outer.tag != 0x30)
        return 0;
    p = outer.content;
    left = outer.len;
    if (!der_read(p, left, &version, &why) || version.tag != 0x02)
        return 0;
    p += version.total;
    left -= version.total;
    if (!der_read(p, left, &id, &why) || id.tag != 0x0c)
        return 0;
    p += id.total;
    left -= id.total;
    if (!der_read(p, left, &endpoint, &why) || endpoint.tag != 0x0c)
        return 0;
    return 1;
}

QK_KEY *qk_keyref_from_der(QK_PROVCTX *ctx, const unsigned char *der, size_t len, const char *origin)
{
    TLV outer, t, files[3];
    const char *why = "";
    const unsigned char *p;
    size_t left;
    QK_KEY *key = NULL;
    int is_unix = 0, i;
    static const char *const file_names[3] = { "caFile", "certFile", "keyFile" };

    if (!der_read(der, len, &outer, &why))
        goto bad;
    if (outer.tag != 0x30) {
        why = "not a SEQUENCE";
        goto bad;
    }
    if (outer.total != len) {
        why = "trailing data after the SEQUENCE";
        goto bad;
    }
    if ((key = qk_key_new(ctx)) == NULL)
        return NULL;
    p = outer.content;
    left = outer.len;

    /* version */
    if (!der_read(p, left, &t, &why))
        goto bad;
    if (t.tag != 0x02 || t.len != 1 || t.content[0] != 1) {
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: unsupported key reference version (this provider reads version 1)",
                 origin);
        goto err;
    }
    p += t.total;
    left -= t.total;

    /* keyId */
    if (!der_read(p, left, &t, &why))
        goto bad;
    if ((key->key_id = utf8_field(ctx, &t, "keyId", origin)) == NULL)
        goto err;
    if (!valid_key_id(t.content, t.len)) {
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: key id '%s' must match ^[A-Za-z0-9._-]{1,64}$", origin, key->key_id);
        goto err;
    }
    p += t.total;
    left -= t.total;

    /* endpoint */
    if (!der_read(p, left, &t, &why))
        goto bad;
    if ((key->endpoint = utf8_field(ctx, &t, "endpoint", origin)) == NULL)
        goto err;
    if (!valid_endpoint(key->endpoint, &is_unix)) {
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: endpoint '%s' must be unix:/absolute/path or host:port", origin,
                 key->endpoint);
        goto err;
    }
    p += t.total;
    left -= t.total;

    /* publicKey */
    if (!der_read(p, left, &t, &why))
        goto bad;
    if (!parse_spki(ctx, key, &t, origin))
        goto err;
    p += t.total;
    left -= t.total;

    /* tls [0] OPTIONAL */
    if (left > 0) {
        if (!der_read(p, left, &t, &why))
            goto bad;
        if (t.tag != 0xa0 || t.total != left) {
            why = "unexpected element after publicKey";
            goto bad;
        }
        p = t.content;
        left = t.len;
        for (i = 0; i < 3; i++) {
            if (!der_read(p, left, &files[i], &why))
                goto bad;
            p += files[i].total;
            left -= files[i].total;
        }
        if (left != 0) {
            why = "trailing data in tls";
            goto bad;
        }
        if ((key->ca_file = utf8_field(ctx, &files[0], file_names[0], origin)) == NULL
            || (key->cert_file = utf8_field(ctx, &files[1], file_names[1], origin)) == NULL
            || (key->key_file = utf8_field(ctx, &files[2], file_names[2], origin)) == NULL)
            goto err;
    }
    if (!is_unix && key->ca_file == NULL) {
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE,
                 "%s: TCP endpoint '%s' needs a client TLS identity (caFile, certFile, keyFile)", origin, key->endpoint);
        goto err;
    }
    /* Read the mTLS files now: nginx and HAProxy load keys before dropping privileges. */
    if (!is_unix
        && (!read_file(ctx, key->ca_file, file_names[0], origin, &key->ca_pem, &key->ca_pem_len)
            || !read_file(ctx, key->cert_file, file_names[1], origin, &key->cert_pem, &key->cert_pem_len)
            || !read_file(ctx, key->key_file, file_names[2], origin, &key->key_pem, &key->key_pem_len)))
        goto err;
    return key;

bad:
    QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: malformed DER (%s)", origin, why);
err:
    qk_key_free(key);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* PEM */

#define PEM_BEGIN "-----BEGIN " QK_PEM_LABEL "-----"
#define PEM_END "-----END " QK_PEM_LABEL "-----"

static const unsigned char *find(const unsigned char *hay, size_t haylen, const char *needle)
{
    size_t n = strlen(needle), i;

    if (haylen < n)
        return NULL;
    for (i = 0; i + n <= haylen; i++)
        if (hay[i] == (unsigned char)needle[0] && memcmp(hay + i, needle, n) == 0)
            return hay + i;
    return NULL;
}

int qk_keyref_pem_to_der(QK_PROVCTX *ctx, const unsigned char *text, size_t len, const char *origin,
                         unsigned char **der, size_t *derlen)
{
    const unsigned char *begin, *body, *end;
    EVP_ENCODE_CTX *ectx = NULL;
    unsigned char *out = NULL;
    int outl = 0, finl = 0, ok = -1;
    size_t bodylen, i;

    *der = NULL;
    *derlen = 0;
    begin = find(text, len, PEM_BEGIN);
    /* Must start a line. */
    while (begin != NULL && begin != text && begin[-1] != '\n' && begin[-1] != '\r') {
        size_t off = (size_t)(begin - text) + 1;
        begin = find(text + off, len - off, PEM_BEGIN);
    }
    if (begin == NULL)
        return 0;
    body = begin + strlen(PEM_BEGIN);
    end = find(body, len - (size_t)(body - text), PEM_END);
    if (end == NULL) {
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: truncated PEM: no '%s' line", origin, PEM_END);
        return -1;
    }
    bodylen = (size_t)(end - body);
    for (i = 0; i < bodylen; i++) {
        unsigned char c = body[i];
        if (c == ':') {
            QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: PEM headers (encryption) are not used in key references",
                     origin);
            return -1;
        }
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/'
              || c == '=' || c == '\n' || c == '\r' || c == ' ' || c == '\t')) {
            QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: PEM body is not base64 (byte 0x%02x at offset %zu)", origin, c,
                     (size_t)(body + i - text));
            return -1;
        }
    }
    if (bodylen > INT_MAX / 2 || (out = OPENSSL_malloc(bodylen + 16)) == NULL
        || (ectx = EVP_ENCODE_CTX_new()) == NULL) {
        QK_RAISE(ctx, QK_R_INTERNAL, "out of memory");
        goto end;
    }
    EVP_DecodeInit(ectx);
    ERR_set_mark();
    if (EVP_DecodeUpdate(ectx, out, &outl, body, (int)bodylen) < 0 || EVP_DecodeFinal(ectx, out + outl, &finl) < 0) {
        ERR_pop_to_mark();
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: PEM body is not valid base64", origin);
        goto end;
    }
    ERR_pop_to_mark();
    if (outl + finl == 0) {
        QK_RAISE(ctx, QK_R_BAD_KEY_REFERENCE, "%s: empty PEM body", origin);
        goto end;
    }
    *der = out;
    *derlen = (size_t)(outl + finl);
    out = NULL;
    ok = 1;
end:
    EVP_ENCODE_CTX_free(ectx);
    OPENSSL_free(out);
    return ok;
}
