/*
 * quorumkey provider entry point: OSSL_provider_init, provider parameters, the operation tables
 * and the error reason strings.
 *
 * openssl.cnf parameters of the quorumkey section (read with core_get_params):
 *   deadline_ms = 5000   deadline of one signature request to the coordinator (1..600000)
 *   log = 1              0: no lines on stderr (first signature, failures, recovery)
 * Environment (read once, when the provider is initialised):
 *   QUORUMKEY_DEADLINE_MS  overrides deadline_ms
 *   QUORUMKEY_DEBUG=1      traces parameter requests on stderr (development)
 *
 * Nothing here touches gRPC: the process that loads the configuration (nginx and HAProxy
 * masters) must never call a gRPC function; client.c does that lazily in the signing process.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <openssl/params.h>

#include "qk.h"

static OSSL_FUNC_core_gettable_params_fn *c_gettable_params;
static OSSL_FUNC_core_get_params_fn *c_get_params;
static OSSL_FUNC_core_new_error_fn *c_new_error;
static OSSL_FUNC_core_set_error_debug_fn *c_set_error_debug;
static OSSL_FUNC_core_vset_error_fn *c_vset_error;
static OSSL_FUNC_BIO_read_ex_fn *c_bio_read_ex;
static OSSL_FUNC_BIO_gets_fn *c_bio_gets;
static OSSL_FUNC_BIO_write_ex_fn *c_bio_write_ex;
static OSSL_FUNC_core_get_libctx_fn *c_get_libctx;
static int g_debug;

#define QK_BUILDINFO "quorumkey provider " QK_VERSION " (OpenSSL " OPENSSL_VERSION_STR " headers, gRPC core " QK_GRPC_CORE_VERSION ")"

/* ---------------------------------------------------------------------------------------- */
/* Errors and logging */

void qk_raise(const QK_PROVCTX *ctx, const char *file, int line, const char *func, uint32_t reason,
              const char *fmt, ...)
{
    const char *base = strrchr(file, '/');
    va_list ap;

    if (ctx == NULL || c_new_error == NULL || c_vset_error == NULL)
        return;
    c_new_error(ctx->handle);
    /* The file's name only: __FILE__ is the build machine's absolute path. */
    if (c_set_error_debug != NULL)
        c_set_error_debug(ctx->handle, base != NULL ? base + 1 : file, line, func);
    va_start(ap, fmt);
    c_vset_error(ctx->handle, reason, fmt, ap);
    va_end(ap);
}

void qk_log(const QK_PROVCTX *ctx, const char *fmt, ...)
{
    char line[1024];
    int n;
    va_list ap;

    if (ctx != NULL && !ctx->log)
        return;
    n = snprintf(line, sizeof(line), "quorumkey provider[%ld]: ", (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n = (int)strlen(line);
    line[n] = '\n';
    /* One write(2): lines of concurrent workers do not interleave. */
    if (write(STDERR_FILENO, line, (size_t)n + 1) < 0) {
        /* nothing sensible to do */
    }
}

int qk_debug_enabled(void)
{
    return g_debug;
}

int qk_core_bio_gets(const QK_PROVCTX *ctx, OSSL_CORE_BIO *cin, char *buf, int size)
{
    if (c_bio_gets == NULL) {
        QK_RAISE(ctx, QK_R_INTERNAL, "the core offers no BIO gets function");
        return -1;
    }
    return c_bio_gets(cin, buf, size);
}

int qk_core_bio_read(const QK_PROVCTX *ctx, OSSL_CORE_BIO *cin, unsigned char *buf, size_t len)
{
    size_t done = 0, got;

    if (c_bio_read_ex == NULL) {
        QK_RAISE(ctx, QK_R_INTERNAL, "the core offers no BIO read function");
        return 0;
    }
    while (done < len) {
        got = 0;
        if (!c_bio_read_ex(cin, buf + done, len - done, &got) || got == 0)
            return 0;
        done += got;
    }
    return 1;
}

int qk_core_bio_write(const QK_PROVCTX *ctx, OSSL_CORE_BIO *cout, const void *buf, size_t len)
{
    size_t done = 0, put;

    if (c_bio_write_ex == NULL) {
        QK_RAISE(ctx, QK_R_INTERNAL, "the core offers no BIO write function");
        return 0;
    }
    while (done < len) {
        put = 0;
        if (!c_bio_write_ex(cout, (const unsigned char *)buf + done, len - done, &put) || put == 0) {
            QK_RAISE(ctx, QK_R_INTERNAL, "cannot write the encoded key");
            return 0;
        }
        done += put;
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Provider parameters */

static const OSSL_PARAM qk_gettable_params_list[] = {
    OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_NAME, NULL, 0),
    OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_VERSION, NULL, 0),
    OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_BUILDINFO, NULL, 0),
    OSSL_PARAM_int(OSSL_PROV_PARAM_STATUS, NULL),
    OSSL_PARAM_END
};

static const OSSL_PARAM *qk_gettable_params(void *provctx)
{
    (void)provctx;
    return qk_gettable_params_list;
}

static int qk_get_params(void *provctx, OSSL_PARAM params[])
{
    OSSL_PARAM *p;

    (void)provctx;
    if (params == NULL)
        return 1;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, "quorumkey (threshold-protected keys)"))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, QK_VERSION))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, QK_BUILDINFO))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
    if (p != NULL && !OSSL_PARAM_set_int(p, 1))
        return 0;
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Operations */

static const OSSL_ALGORITHM qk_keymgmt[] = {
    { QK_EC_NAMES, QK_PROPS, qk_keymgmt_functions,
      "quorumkey P-256 key: public key local, private key held by threshold signers" },
    { NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM qk_signature[] = {
    { "ECDSA", QK_PROPS, qk_signature_functions, "ECDSA through the quorumkey coordinator" },
    { NULL, NULL, NULL, NULL }
};

/*
 * Two decoders: the key-reference PEM (named "DER" like OpenSSL's own PEM-to-DER decoder, so the
 * file: store and PEM_read_bio_PrivateKey chain it in), which hands on DER of structure
 * "quorumkey", and that DER to an EC key object reference.
 */
static const OSSL_ALGORITHM qk_decoder[] = {
    { "DER", QK_PROPS ",input=pem", qk_decoder_pem_functions, "quorumkey key reference PEM to DER" },
    { QK_EC_NAMES, QK_PROPS ",input=der,structure=" QK_DER_STRUCTURE, qk_decoder_der_functions,
      "quorumkey key reference DER to key" },
    { NULL, NULL, NULL, NULL }
};

/* Text (openssl pkey -text) and the public key as SubjectPublicKeyInfo (-pubout, X509_PUBKEY). */
static const OSSL_ALGORITHM qk_encoder[] = {
    { QK_EC_NAMES, QK_PROPS ",output=text", qk_encoder_text_functions, "quorumkey key as text" },
    { QK_EC_NAMES, QK_PROPS ",output=der,structure=SubjectPublicKeyInfo", qk_encoder_spki_der_functions,
      "quorumkey public key as SubjectPublicKeyInfo DER" },
    { QK_EC_NAMES, QK_PROPS ",output=pem,structure=SubjectPublicKeyInfo", qk_encoder_spki_pem_functions,
      "quorumkey public key as SubjectPublicKeyInfo PEM" },
    { NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM qk_store[] = {
    { "quorumkey", QK_PROPS, qk_store_functions, "quorumkey:ref=/path/to/key.pem" },
    { NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM *qk_query_operation(void *provctx, int operation_id, int *no_cache)
{
    (void)provctx;
    /* Cacheable from the very first call: nginx creates its SSL_CTX before loading the key. */
    *no_cache = 0;
    switch (operation_id) {
    case OSSL_OP_KEYMGMT:
        return qk_keymgmt;
    case OSSL_OP_SIGNATURE:
        return qk_signature;
    case OSSL_OP_DECODER:
        return qk_decoder;
    case OSSL_OP_ENCODER:
        return qk_encoder;
    case OSSL_OP_STORE:
        return qk_store;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Reason strings: errors print as "quorumkey:<function>:<reason>:<details>". */

static const OSSL_ITEM qk_reason_strings[] = {
    { QK_R_COORDINATOR_UNREACHABLE, "coordinator unreachable" },
    { QK_R_QUORUM_INSUFFICIENT, "quorum insufficient" },
    { QK_R_POLICY_REFUSED, "policy refused" },
    { QK_R_DEADLINE_EXCEEDED, "deadline exceeded" },
    { QK_R_KEY_NOT_FOUND, "key not found" },
    { QK_R_COORDINATOR_INTERNAL, "coordinator internal error" },
    { QK_R_REQUEST_REJECTED, "request rejected by the coordinator" },
    { QK_R_POOL_EXHAUSTED, "presignatures exhausted" },
    { QK_R_SIGN_FAILED, "signature request failed" },
    { QK_R_BAD_RESPONSE, "invalid response from the coordinator" },
    { QK_R_BAD_KEY_REFERENCE, "invalid key reference" },
    { QK_R_PRIVATE_KEY_NOT_EXPORTABLE, "private key is not exportable" },
    { QK_R_PUBLIC_KEY_ONLY, "public key only, no key reference to sign with" },
    { QK_R_UNSUPPORTED_DIGEST, "unsupported digest" },
    { QK_R_DATA_TOO_LARGE, "data to sign too large" },
    { QK_R_BUFFER_TOO_SMALL, "signature buffer too small" },
    { QK_R_BAD_CONFIG, "invalid provider configuration" },
    { QK_R_FORKED_AFTER_GRPC, "process forked after using gRPC" },
    { QK_R_BAD_URI, "invalid quorumkey: URI" },
    { QK_R_VERIFY_NOT_SUPPORTED, "verification is not offered by the quorumkey provider" },
    { QK_R_BAD_PARAMETER, "invalid parameter" },
    { QK_R_INTERNAL, "internal error" },
    { QK_R_CIRCUIT_OPEN, "coordinator unavailable (circuit open)" },
    { QK_R_TLS12_REFUSED, "TLS 1.2 ServerKeyExchange refused: allow only TLS 1.3" },
    { 0, NULL }
};

static const OSSL_ITEM *qk_get_reason_strings(void *provctx)
{
    (void)provctx;
    return qk_reason_strings;
}

/* ---------------------------------------------------------------------------------------- */

static void qk_teardown(void *provctx)
{
    /*
     * gRPC state (if this process signed) is left alone: grpc_shutdown() from an atexit handler
     * can block on gRPC's own threads. The module is linked with -z nodelete.
     */
    OPENSSL_free(provctx);
}

static const OSSL_DISPATCH qk_provider_functions[] = {
    { OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))qk_teardown },
    { OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))qk_gettable_params },
    { OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))qk_get_params },
    { OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))qk_query_operation },
    { OSSL_FUNC_PROVIDER_GET_REASON_STRINGS, (void (*)(void))qk_get_reason_strings },
    { 0, NULL }
};

static int parse_deadline(const char *text, long *out)
{
    char *end = NULL;
    long v;

    if (text == NULL || *text == '\0')
        return 0;
    errno = 0;
    v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 1 || v > QK_MAX_DEADLINE_MS)
        return 0;
    *out = v;
    return 1;
}

static int parse_bool(const char *text, int *out)
{
    if (strcmp(text, "1") == 0 || strcmp(text, "yes") == 0 || strcmp(text, "true") == 0 || strcmp(text, "on") == 0)
        *out = 1;
    else if (strcmp(text, "0") == 0 || strcmp(text, "no") == 0 || strcmp(text, "false") == 0
             || strcmp(text, "off") == 0)
        *out = 0;
    else
        return 0;
    return 1;
}

__attribute__((visibility("default")))
int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in, const OSSL_DISPATCH **out,
                       void **provctx)
{
    QK_PROVCTX *ctx;
    const char *cnf_deadline = NULL, *cnf_log = NULL, *env;
    OSSL_PARAM core_params[3];

    for (; in->function_id != 0; in++) {
        switch (in->function_id) {
        case OSSL_FUNC_CORE_GETTABLE_PARAMS:
            c_gettable_params = OSSL_FUNC_core_gettable_params(in);
            break;
        case OSSL_FUNC_CORE_GET_PARAMS:
            c_get_params = OSSL_FUNC_core_get_params(in);
            break;
        case OSSL_FUNC_CORE_NEW_ERROR:
            c_new_error = OSSL_FUNC_core_new_error(in);
            break;
        case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
            c_set_error_debug = OSSL_FUNC_core_set_error_debug(in);
            break;
        case OSSL_FUNC_CORE_VSET_ERROR:
            c_vset_error = OSSL_FUNC_core_vset_error(in);
            break;
        case OSSL_FUNC_CORE_GET_LIBCTX:
            c_get_libctx = OSSL_FUNC_core_get_libctx(in);
            break;
        case OSSL_FUNC_BIO_READ_EX:
            c_bio_read_ex = OSSL_FUNC_BIO_read_ex(in);
            break;
        case OSSL_FUNC_BIO_GETS:
            c_bio_gets = OSSL_FUNC_BIO_gets(in);
            break;
        case OSSL_FUNC_BIO_WRITE_EX:
            c_bio_write_ex = OSSL_FUNC_BIO_write_ex(in);
            break;
        default:
            break;
        }
    }
    (void)c_gettable_params;

    env = getenv("QUORUMKEY_DEBUG");
    g_debug = env != NULL && strcmp(env, "1") == 0;

    ctx = OPENSSL_zalloc(sizeof(*ctx));
    if (ctx == NULL)
        return 0;
    ctx->handle = handle;
    /* In OpenSSL 3 the core's context is the OSSL_LIB_CTX that loaded us. */
    ctx->libctx = c_get_libctx != NULL ? (OSSL_LIB_CTX *)c_get_libctx(handle) : NULL;
    ctx->deadline_ms = QK_DEFAULT_DEADLINE_MS;
    ctx->log = 1;

    core_params[0] = OSSL_PARAM_construct_utf8_ptr("deadline_ms", (char **)&cnf_deadline, 0);
    core_params[1] = OSSL_PARAM_construct_utf8_ptr("log", (char **)&cnf_log, 0);
    core_params[2] = OSSL_PARAM_construct_end();
    if (c_get_params != NULL && !c_get_params(handle, core_params)) {
        qk_log(NULL, "load failed: cannot read the provider configuration");
        OPENSSL_free(ctx);
        return 0;
    }
    if (cnf_log != NULL && !parse_bool(cnf_log, &ctx->log)) {
        QK_RAISE(ctx, QK_R_BAD_CONFIG, "log = '%s' in openssl.cnf: use 0 or 1", cnf_log);
        qk_log(NULL, "load failed: log = '%s' in openssl.cnf: use 0 or 1", cnf_log);
        OPENSSL_free(ctx);
        return 0;
    }
    if (cnf_deadline != NULL && !parse_deadline(cnf_deadline, &ctx->deadline_ms)) {
        QK_RAISE(ctx, QK_R_BAD_CONFIG, "deadline_ms = '%s' in openssl.cnf: use milliseconds, 1..%d",
                 cnf_deadline, QK_MAX_DEADLINE_MS);
        qk_log(NULL, "load failed: deadline_ms = '%s' in openssl.cnf: use milliseconds, 1..%d", cnf_deadline,
               QK_MAX_DEADLINE_MS);
        OPENSSL_free(ctx);
        return 0;
    }
    env = getenv("QUORUMKEY_DEADLINE_MS");
    if (env != NULL && *env != '\0' && !parse_deadline(env, &ctx->deadline_ms)) {
        QK_RAISE(ctx, QK_R_BAD_CONFIG, "QUORUMKEY_DEADLINE_MS='%s': use milliseconds, 1..%d", env,
                 QK_MAX_DEADLINE_MS);
        qk_log(NULL, "load failed: QUORUMKEY_DEADLINE_MS='%s': use milliseconds, 1..%d", env, QK_MAX_DEADLINE_MS);
        OPENSSL_free(ctx);
        return 0;
    }
    if (g_debug)
        qk_log(ctx, "loaded: deadline %ld ms (%s)", ctx->deadline_ms, QK_BUILDINFO);

    *out = qk_provider_functions;
    *provctx = ctx;
    return 1;
}
