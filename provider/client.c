/*
 * Client of quorumkey.v1.Coordinator/Sign (gRPC C core, protobuf-c messages in raw byte buffers):
 * channels, the circuit breaker, the log state, and the classification of answers. One call is
 * made by call.c (blocking) or async.c (inside an OpenSSL ASYNC job).
 *
 * Fork safety (DESIGN §8, measured with Debian's libgrpc 1.51): nginx and HAProxy load keys in
 * the master and fork workers; gRPC survives a fork only if the parent never called any gRPC
 * function, not even grpc_init. So nothing here runs before the first signature: grpc_init and
 * the channels are created lazily, in the signing process, and remembered with its pid. A
 * process forked from one that had already used gRPC gets a clear error instead of a hang.
 *
 * One channel per (endpoint, TLS identity) per process, with a local subchannel pool and short
 * reconnect backoff, so gRPC finds a restarted coordinator again on its own.
 *
 * Transport failures and coordinator answers are told apart by the metadata the coordinator puts
 * on each status it sends (call.h): an UNAVAILABLE "quorum insufficient" is an answer.
 * - Retry: only a transport failure on a connection that was established (READY) before the call
 *   (the coordinator restarted since), once, with wait-for-ready, for at most 1 s of the deadline.
 * - Circuit: a transport failure marks the endpoint down. While it is down, a signature fails at
 *   once (no call, no connection attempt of its own: "coordinator unavailable (circuit open)")
 *   unless gRPC's background reconnection has made the channel READY again; that call is the probe
 *   and closes the circuit when the coordinator answers.
 * - Log: "signing failed" / "signing works again" flips on availability only (transport, deadline,
 *   quorum, presignatures); a policy refusal or a rejected request is the caller's, not an outage.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include <openssl/crypto.h>

#include "async.h"
#include "call.h"
#include "qk.h"
#include "quorumkey.pb-c.h"

#define RETRY_WINDOW_MS 1000
#define DOWN_REASON_MAX 200

typedef struct chan_st {
    struct chan_st *next;
    char *endpoint;
    char *identity;          /* "" for unix sockets, else "ca|cert|key" paths */
    grpc_channel *channel;
    /* Circuit: down since a transport failure, until the coordinator answers again (g_mu). */
    int down;
    double down_since_ms;
    char down_reason[DOWN_REASON_MAX];
} CHAN;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t g_grpc_pid;     /* process that called grpc_init, 0: none */
static CHAN *g_chans;
/* Log state, per process: 0 nothing logged yet, 1 working, -1 failing. */
static pid_t g_log_pid;
static int g_log_state;

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static char *identity_of(const QK_KEY *key)
{
    size_t n;
    char *s;

    if (key->ca_file == NULL)
        return OPENSSL_strdup("");
    n = strlen(key->ca_file) + strlen(key->cert_file) + strlen(key->key_file) + 3;
    if ((s = OPENSSL_malloc(n)) != NULL)
        snprintf(s, n, "%s|%s|%s", key->ca_file, key->cert_file, key->key_file);
    return s;
}

static grpc_channel *create_channel(const QK_KEY *key)
{
    grpc_channel_credentials *creds;
    grpc_channel *ch;
    grpc_arg args[4];
    grpc_channel_args chargs;

    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    args[0].value.integer = 1;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
    args[1].value.integer = 200;
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
    args[2].value.integer = 1000;
    args[3].type = GRPC_ARG_STRING;
    args[3].key = (char *)GRPC_ARG_PRIMARY_USER_AGENT_STRING;
    args[3].value.string = (char *)"quorumkey-provider/" QK_VERSION;
    chargs.num_args = 4;
    chargs.args = args;

    if (key->ca_file == NULL) {
        creds = grpc_insecure_credentials_create();
    } else {
        grpc_ssl_pem_key_cert_pair pair;

        pair.private_key = (const char *)key->key_pem;
        pair.cert_chain = (const char *)key->cert_pem;
        creds = grpc_ssl_credentials_create((const char *)key->ca_pem, &pair, NULL, NULL);
    }
    if (creds == NULL)
        return NULL;
    ch = grpc_channel_create(key->endpoint, creds, &chargs);
    grpc_channel_credentials_release(creds);
    return ch;
}

typedef struct {
    QK_PROVCTX *ctx;
    QK_KEY *key;                 /* a reference */
    QK_MD md;
    unsigned char *tbs;          /* a copy; or the digest: */
    size_t tbslen;
    unsigned char digest[64];
    size_t digestlen;
    size_t sigsize;
    /* The outcome: raised into the caller's error queue by the caller's thread. */
    int ok;
    unsigned char sig[QK_MAX_SIG_LEN];
    size_t siglen;
    uint32_t reason;
    char what[QK_DETAILS_MAX + 240];
} SIGN_OP;

static void fail(SIGN_OP *op, uint32_t reason, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void fail(SIGN_OP *op, uint32_t reason, const char *fmt, ...)
{
    va_list ap;

    op->reason = reason;
    va_start(ap, fmt);
    vsnprintf(op->what, sizeof(op->what), fmt, ap);
    va_end(ap);
}

/* The channel for this key in this process; the first call in a process initialises gRPC.
 * Channels live as long as the process. */
static CHAN *get_channel(SIGN_OP *op)
{
    const QK_KEY *key = op->key;
    pid_t pid = getpid();
    char *identity = identity_of(key);
    CHAN *c;

    if (identity == NULL) {
        fail(op, QK_R_INTERNAL, "out of memory");
        return NULL;
    }
    pthread_mutex_lock(&g_mu);
    if (g_grpc_pid != 0 && g_grpc_pid != pid) {
        pthread_mutex_unlock(&g_mu);
        fail(op, QK_R_FORKED_AFTER_GRPC,
             "pid %ld was forked from pid %ld after that process had signed through gRPC; gRPC cannot be used "
             "across such a fork. Load keys before forking, but sign only in the forked processes",
             (long)pid, (long)g_grpc_pid);
        OPENSSL_free(identity);
        return NULL;
    }
    if (g_grpc_pid == 0) {
        grpc_init();
        g_grpc_pid = pid;
    }
    for (c = g_chans; c != NULL; c = c->next)
        if (strcmp(c->endpoint, key->endpoint) == 0 && strcmp(c->identity, identity) == 0)
            break;
    if (c == NULL) {
        grpc_channel *created = create_channel(key);

        if (created != NULL && (c = OPENSSL_zalloc(sizeof(*c))) != NULL
            && (c->endpoint = OPENSSL_strdup(key->endpoint)) != NULL) {
            c->identity = identity;
            identity = NULL;
            c->channel = created;
            c->next = g_chans;
            g_chans = c;
        } else {
            if (c != NULL)
                OPENSSL_free(c);
            c = NULL;
            if (created != NULL)
                grpc_channel_destroy(created);
        }
    }
    pthread_mutex_unlock(&g_mu);
    OPENSSL_free(identity);
    if (c == NULL)
        fail(op, QK_R_COORDINATOR_UNREACHABLE, "cannot create a gRPC channel to %s", key->endpoint);
    return c;
}

static const char *status_name(grpc_status_code s)
{
    static const char *const names[] = { "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                         "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                         "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                         "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED" };

    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

static const char *connectivity_name(grpc_connectivity_state st)
{
    switch (st) {
    case GRPC_CHANNEL_IDLE:
        return "idle";
    case GRPC_CHANNEL_CONNECTING:
        return "connecting";
    case GRPC_CHANNEL_READY:
        return "ready";
    case GRPC_CHANNEL_TRANSIENT_FAILURE:
        return "transient failure";
    case GRPC_CHANNEL_SHUTDOWN:
        return "shut down";
    }
    return "?";
}

/* Circuit open: fail at once, unless gRPC reconnected in the background (then this call probes). */
static int circuit_allows(CHAN *c, SIGN_OP *op)
{
    char reason[DOWN_REASON_MAX];
    double since;
    grpc_connectivity_state st;

    pthread_mutex_lock(&g_mu);
    if (!c->down) {
        pthread_mutex_unlock(&g_mu);
        return 1;
    }
    since = c->down_since_ms;
    snprintf(reason, sizeof(reason), "%s", c->down_reason);
    pthread_mutex_unlock(&g_mu);
    /* try_to_connect: an idle channel starts reconnecting; this call does not wait for it. */
    st = grpc_channel_check_connectivity_state(c->channel, 1);
    if (st == GRPC_CHANNEL_READY)
        return 1;
    fail(op, QK_R_CIRCUIT_OPEN,
         "%s (key '%s') unreachable for %.0f ms (%s); failing at once until gRPC has reconnected in the "
         "background (channel %s)",
         op->key->endpoint, op->key->key_id, now_ms() - since, reason, connectivity_name(st));
    return 0;
}

/* A transport failure opens the circuit; any answer of the coordinator closes it. */
static void circuit_update(CHAN *c, const QK_CALL_RESULT *r)
{
    pthread_mutex_lock(&g_mu);
    if (r->from_coordinator) {
        c->down = 0;
    } else if (r->status == GRPC_STATUS_UNAVAILABLE) {
        if (!c->down)
            c->down_since_ms = now_ms();
        c->down = 1;
        snprintf(c->down_reason, sizeof(c->down_reason), "%.*s", DOWN_REASON_MAX - 1, r->details);
    }
    pthread_mutex_unlock(&g_mu);
}

/* Refusals that say something about the request, not about the service being available. */
static int callers_error(const QK_CALL_RESULT *r)
{
    static const char *const kinds[] = { "invalid_input", "not_found", "policy_refused", "forbidden",
                                         "rate_limited", "failed_precondition", "already_exists" };
    size_t i;

    if (!r->from_coordinator)
        return 0;
    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(r->kind, kinds[i]) == 0)
            return 1;
    return 0;
}

/* outcome: 1 signed, -1 an availability failure, 0 a refusal of this request (no state change). */
static void log_outcome(const SIGN_OP *op, int outcome, double ms)
{
    pid_t pid = getpid();
    int prev;

    if (outcome == 0)
        return;
    pthread_mutex_lock(&g_mu);
    if (g_log_pid != pid) {
        g_log_pid = pid;
        g_log_state = 0;
    }
    prev = g_log_state;
    g_log_state = outcome;
    pthread_mutex_unlock(&g_mu);
    if (outcome > 0 && prev == 0)
        qk_log(op->ctx, "first signature: key '%s' via %s in %.1f ms (deadline %ld ms)", op->key->key_id,
               op->key->endpoint, ms, op->ctx->deadline_ms);
    else if (outcome > 0 && prev < 0)
        qk_log(op->ctx, "signing works again: key '%s' via %s in %.1f ms", op->key->key_id, op->key->endpoint, ms);
    else if (outcome < 0 && prev >= 0)
        qk_log(op->ctx, "signing failed (further failures are not logged until it works again): %s", op->what);
}

static unsigned char *pack_request(const SIGN_OP *op, size_t *len)
{
    Quorumkey__V1__SignRequest req = QUORUMKEY__V1__SIGN_REQUEST__INIT;
    gpr_timespec wall = gpr_now(GPR_CLOCK_REALTIME);
    unsigned char *packed;

    req.key_id = op->key->key_id;
    req.digest_alg = op->md == QK_MD_SHA384   ? QUORUMKEY__V1__DIGEST_ALGORITHM__SHA384
                     : op->md == QK_MD_SHA512 ? QUORUMKEY__V1__DIGEST_ALGORITHM__SHA512
                                              : QUORUMKEY__V1__DIGEST_ALGORITHM__SHA256;
    if (op->tbs == NULL) {
        req.digest.data = (uint8_t *)op->digest;
        req.digest.len = op->digestlen;
    } else {
        req.tbs.data = op->tbs;
        req.tbs.len = op->tbslen;
    }
    /* The absolute deadline travels with the request (a retry keeps it): a coordinator that reads
     * the request late, stalled or swapped out, still knows when this caller gives up. */
    req.deadline_unix_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000 + op->ctx->deadline_ms;
    *len = quorumkey__v1__sign_request__get_packed_size(&req);
    if ((packed = OPENSSL_malloc(*len > 0 ? *len : 1)) != NULL)
        quorumkey__v1__sign_request__pack(&req, packed);
    return packed;
}

static gpr_timespec in_ms(double ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis((int64_t)ms, GPR_TIMESPAN));
}

/* The call, and its one retry when an established connection broke (the coordinator restarted). */
static void call_with_retry(CHAN *c, SIGN_OP *op, const unsigned char *msg, size_t len, double start,
                            QK_CALL_RESULT *r, int *retried)
{
    grpc_connectivity_state before = grpc_channel_check_connectivity_state(c->channel, 0);
    double left;

    qk_call(c->channel, msg, len, in_ms((double)op->ctx->deadline_ms), 0, r);
    left = start + (double)op->ctx->deadline_ms - now_ms();
    if (r->status == GRPC_STATUS_UNAVAILABLE && !r->from_coordinator && before == GRPC_CHANNEL_READY && left > 1.0) {
        QK_CALL_RESULT again;

        *retried = 1;
        qk_call(c->channel, msg, len, in_ms(left < RETRY_WINDOW_MS ? left : RETRY_WINDOW_MS), 1, &again);
        if (again.status == GRPC_STATUS_DEADLINE_EXCEEDED && !again.from_coordinator) {
            /* Still no connection after the retry window: report the transport's reason. */
            OPENSSL_free(again.response);
        } else {
            OPENSSL_free(r->response);
            *r = again;
        }
    }
}

/* The answer as the signature or a reason; returns the outcome for log_outcome. */
static int take_answer(SIGN_OP *op, const QK_CALL_RESULT *r, int retried, double elapsed)
{
    const QK_KEY *key = op->key;
    Quorumkey__V1__SignResponse *resp;

    switch (r->status) {
    case GRPC_STATUS_OK:
        resp = quorumkey__v1__sign_response__unpack(NULL, r->response_len, r->response);
        if (resp == NULL || resp->signature_der.len == 0 || resp->signature_der.len > QK_MAX_SIG_LEN) {
            fail(op, QK_R_BAD_RESPONSE, "key '%s' via %s: the response has no valid signature_der", key->key_id,
                 key->endpoint);
        } else if (resp->signature_der.len > op->sigsize) {
            fail(op, QK_R_BUFFER_TOO_SMALL, "signature of %zu bytes, buffer of %zu", resp->signature_der.len,
                 op->sigsize);
        } else {
            memcpy(op->sig, resp->signature_der.data, resp->signature_der.len);
            op->siglen = resp->signature_der.len;
            op->ok = 1;
        }
        if (resp != NULL)
            quorumkey__v1__sign_response__free_unpacked(resp, NULL);
        return op->ok ? 1 : -1;
    case GRPC_STATUS_UNAVAILABLE:
        if (!r->from_coordinator)
            fail(op, QK_R_COORDINATOR_UNREACHABLE, "%s (key '%s'; %s%.0f ms): %s", key->endpoint, key->key_id,
                 retried ? "retried, " : "", elapsed, r->details);
        else
            fail(op, strcmp(r->kind, "quorum_insufficient") == 0 ? QK_R_QUORUM_INSUFFICIENT : QK_R_SIGN_FAILED,
                 "key '%s' via %s: %s", key->key_id, key->endpoint, r->details);
        break;
    case GRPC_STATUS_DEADLINE_EXCEEDED:
        fail(op, QK_R_DEADLINE_EXCEEDED, "no signature from %s for key '%s' within deadline_ms=%ld (%.0f ms): %s",
             key->endpoint, key->key_id, op->ctx->deadline_ms, elapsed, r->details);
        break;
    case GRPC_STATUS_NOT_FOUND:
        fail(op, QK_R_KEY_NOT_FOUND, "the coordinator at %s does not know key '%s': %s", key->endpoint, key->key_id,
             r->details);
        break;
    case GRPC_STATUS_PERMISSION_DENIED:
        fail(op, QK_R_POLICY_REFUSED, "key '%s' via %s: %s", key->key_id, key->endpoint, r->details);
        break;
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
        /* The key's rate limit is a policy decision; anything else is the presignature pool. */
        fail(op, strcmp(r->kind, "rate_limited") == 0 ? QK_R_POLICY_REFUSED : QK_R_POOL_EXHAUSTED, "key '%s' via %s: %s",
             key->key_id, key->endpoint, r->details);
        break;
    case GRPC_STATUS_INVALID_ARGUMENT:
        fail(op, QK_R_REQUEST_REJECTED, "key '%s' via %s: %s", key->key_id, key->endpoint, r->details);
        break;
    case GRPC_STATUS_INTERNAL:
        fail(op, r->from_coordinator ? QK_R_COORDINATOR_INTERNAL : QK_R_SIGN_FAILED, "key '%s' via %s: %s",
             key->key_id, key->endpoint, r->details);
        break;
    default:
        fail(op, QK_R_SIGN_FAILED, "key '%s' via %s: status %s: %s", key->key_id, key->endpoint,
             status_name(r->status), r->details);
        break;
    }
    return callers_error(r) ? 0 : -1;
}

/* The whole request, blocking; on a provider thread when the caller runs in an ASYNC job. */
static void sign_run(void *arg)
{
    SIGN_OP *op = arg;
    double start = now_ms();
    unsigned char *packed;
    size_t packed_len;
    CHAN *c;
    QK_CALL_RESULT r;
    int retried = 0;

    if ((c = get_channel(op)) == NULL)
        return;
    if (!circuit_allows(c, op)) {
        log_outcome(op, -1, now_ms() - start);
        return;
    }
    if ((packed = pack_request(op, &packed_len)) == NULL) {
        fail(op, QK_R_INTERNAL, "out of memory");
        return;
    }
    call_with_retry(c, op, packed, packed_len, start, &r, &retried);
    OPENSSL_free(packed);
    circuit_update(c, &r);
    log_outcome(op, take_answer(op, &r, retried, now_ms() - start), now_ms() - start);
    OPENSSL_free(r.response);
}

static void sign_op_free(void *arg)
{
    SIGN_OP *op = arg;

    if (op == NULL)
        return;
    qk_key_free(op->key);
    OPENSSL_free(op->tbs);
    OPENSSL_cleanse(op->sig, sizeof(op->sig));
    OPENSSL_free(op);
}

static SIGN_OP *sign_op_new(QK_PROVCTX *ctx, const QK_KEY *key, QK_MD md, const unsigned char *tbs, size_t tbslen,
                            const unsigned char *digest, size_t digestlen, size_t sigsize)
{
    SIGN_OP *op = OPENSSL_zalloc(sizeof(*op));

    if (op == NULL)
        return NULL;
    op->ctx = ctx;
    op->key = qk_key_up_ref((QK_KEY *)key);
    op->md = md;
    op->sigsize = sigsize;
    if (digest != NULL) {
        memcpy(op->digest, digest, digestlen);
        op->digestlen = digestlen;
    } else if ((op->tbs = OPENSSL_zalloc(tbslen > 0 ? tbslen : 1)) == NULL) {
        sign_op_free(op);
        return NULL;
    } else {
        if (tbslen > 0)
            memcpy(op->tbs, tbs, tbslen);
        op->tbslen = tbslen;
    }
    return op;
}

/* The outcome into the caller's buffer or its error queue. */
static int deliver(const SIGN_OP *op, unsigned char *sig, size_t *siglen)
{
    if (!op->ok) {
        QK_RAISE(op->ctx, op->reason, "%s", op->what);
        return 0;
    }
    memcpy(sig, op->sig, op->siglen);
    *siglen = op->siglen;
    return 1;
}

int qk_client_sign(QK_PROVCTX *ctx, const QK_KEY *key, QK_MD md, const unsigned char *tbs, size_t tbslen,
                   const unsigned char *digest, size_t digestlen, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    SIGN_OP *op;
    QK_ASYNC *pending;
    int ok, in_job;

    if (key->key_id == NULL) {
        QK_RAISE(ctx, QK_R_PUBLIC_KEY_ONLY, "no key reference to sign with");
        return 0;
    }
    if ((digest == NULL && tbs == NULL) || (digest != NULL && digestlen > sizeof(op->digest))) {
        QK_RAISE(ctx, QK_R_BAD_PARAMETER, "nothing to sign, or a digest longer than 64 bytes");
        return 0;
    }
    if ((op = sign_op_new(ctx, key, md, tbs, tbslen, digest, digestlen, sigsize)) == NULL) {
        QK_RAISE(ctx, QK_R_INTERNAL, "out of memory");
        return 0;
    }
    pending = qk_async_start(sign_run, op, sign_op_free, &in_job);
    if (pending == NULL && in_job) {
        /* The blocking path would run gRPC on the job's small stack: refuse instead. */
        sign_op_free(op);
        QK_RAISE(ctx, QK_R_INTERNAL,
                 "cannot hand the signature to a provider thread inside the OpenSSL ASYNC job (out of memory or "
                 "threads; HAProxy workers that do not run as root need insecure-fork-wanted)");
        return 0;
    }
    if (pending != NULL) {
        const SIGN_OP *done = qk_async_wait(pending);

        if (done == NULL) {
            QK_RAISE(ctx, QK_R_INTERNAL, "the ASYNC job's wait context was freed while its signature was pending");
            return 0;
        }
        ok = deliver(done, sig, siglen);
        qk_async_finish(pending);
        return ok;
    }
    sign_run(op);
    ok = deliver(op, sig, siglen);
    sign_op_free(op);
    return ok;
}
