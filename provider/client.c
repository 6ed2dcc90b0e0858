/*
 * gRPC client of quorumkey.v1.Coordinator/Sign (gRPC C core, protobuf-c messages in raw byte
 * buffers).
 *
 * Fork safety (DESIGN §8, measured with Debian's libgrpc 1.51): nginx and HAProxy load keys in
 * the master and fork workers; gRPC survives a fork only if the parent never called any gRPC
 * function, not even grpc_init. So nothing here runs before the first signature: grpc_init and
 * the channels are created lazily, in the signing process, and remembered with its pid. A
 * process forked from one that had already used gRPC gets a clear error instead of a hang.
 *
 * One channel per (endpoint, TLS identity) per process, with a local subchannel pool and short
 * reconnect backoff so a restarted coordinator is found again quickly. Each call has its own
 * completion queue, drained to GRPC_QUEUE_SHUTDOWN; every slice, byte buffer, reader, metadata
 * array and status string is released.
 *
 * Retry: an UNAVAILABLE that comes from the transport (no connection) is retried once with
 * wait-for-ready for at most 1 s within the deadline: a coordinator that was just restarted
 * answers the first handshake instead of failing it. "quorum insufficient" is never retried.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <openssl/crypto.h>

#include "qk.h"
#include "quorumkey.pb-c.h"

#define SIGN_METHOD "/quorumkey.v1.Coordinator/Sign"
#define RETRY_WINDOW_MS 1000
#define DETAILS_MAX 480

typedef struct chan_st {
    struct chan_st *next;
    char *endpoint;
    char *identity;          /* "" for unix sockets, else "ca|cert|key" paths */
    grpc_channel *channel;
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
    args[2].value.integer = 2000;
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

/* The channel for this key in this process; the first call in a process initialises gRPC. */
static grpc_channel *get_channel(QK_PROVCTX *ctx, const QK_KEY *key)
{
    pid_t pid = getpid();
    char *identity = identity_of(key);
    CHAN *c;
    grpc_channel *ch = NULL;

    if (identity == NULL) {
        QK_RAISE(ctx, QK_R_INTERNAL, "out of memory");
        return NULL;
    }
    pthread_mutex_lock(&g_mu);
    if (g_grpc_pid != 0 && g_grpc_pid != pid) {
        pthread_mutex_unlock(&g_mu);
        QK_RAISE(ctx, QK_R_FORKED_AFTER_GRPC,
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
    if (c != NULL)
        ch = c->channel;
    pthread_mutex_unlock(&g_mu);
    OPENSSL_free(identity);
    if (ch == NULL)
        QK_RAISE(ctx, QK_R_COORDINATOR_UNREACHABLE, "cannot create a gRPC channel to %s", key->endpoint);
    return ch;
}

typedef struct {
    grpc_status_code status;
    char details[DETAILS_MAX];
    unsigned char *response;  /* serialized SignResponse (OPENSSL_free) */
    size_t response_len;
} CALL_RESULT;

static void set_details(CALL_RESULT *r, const char *s)
{
    snprintf(r->details, sizeof(r->details), "%s", s != NULL ? s : "");
}

/* One unary call. Returns 0 only if the call could not even be made (local failure). */
static int unary_call(grpc_channel *ch, const unsigned char *req, size_t reqlen, gpr_timespec deadline,
                      int wait_for_ready, CALL_RESULT *r)
{
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_slice method, req_slice, details = grpc_empty_slice();
    grpc_byte_buffer *req_bb, *resp_bb = NULL;
    grpc_metadata_array initial_md, trailing_md;
    const char *error_string = NULL;
    grpc_op ops[6];
    grpc_call_error err;
    grpc_event ev;
    void *tag = (void *)r;

    memset(r, 0, sizeof(*r));
    r->status = GRPC_STATUS_UNKNOWN;
    cq = grpc_completion_queue_create_for_pluck(NULL);
    if (cq == NULL) {
        set_details(r, "cannot create a completion queue");
        return 0;
    }
    method = grpc_slice_from_static_string(SIGN_METHOD);
    call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL, deadline, NULL);
    grpc_slice_unref(method);
    if (call == NULL) {
        grpc_completion_queue_shutdown(cq);
        while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type
               != GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(cq);
        set_details(r, "cannot create a gRPC call");
        return 0;
    }
    req_slice = grpc_slice_from_copied_buffer((const char *)req, reqlen);
    req_bb = grpc_raw_byte_buffer_create(&req_slice, 1);
    grpc_slice_unref(req_slice);
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);

    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = 0;
    ops[0].flags = wait_for_ready
                       ? GRPC_INITIAL_METADATA_WAIT_FOR_READY | GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET
                       : 0;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &r->status;
    ops[5].data.recv_status_on_client.status_details = &details;
    ops[5].data.recv_status_on_client.error_string = &error_string;

    err = grpc_call_start_batch(call, ops, 6, tag, NULL);
    if (err != GRPC_CALL_OK) {
        snprintf(r->details, sizeof(r->details), "grpc_call_start_batch: error %d", (int)err);
        r->status = GRPC_STATUS_INTERNAL;
    } else {
        /* The call's deadline completes the batch; the margin only guards against a stuck library. */
        gpr_timespec guard = gpr_time_add(gpr_convert_clock_type(deadline, GPR_CLOCK_MONOTONIC),
                                          gpr_time_from_millis(5000, GPR_TIMESPAN));

        ev = grpc_completion_queue_pluck(cq, tag, guard, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT) {
            grpc_call_cancel(call, NULL);
            ev = grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        }
        if (ev.type != GRPC_OP_COMPLETE) {
            r->status = GRPC_STATUS_INTERNAL;
            set_details(r, "the gRPC call did not complete");
        } else {
            char *d = grpc_slice_to_c_string(details);

            set_details(r, d != NULL && *d != '\0' ? d : error_string);
            gpr_free(d);
            if (r->status == GRPC_STATUS_OK) {
                if (resp_bb == NULL) {
                    r->status = GRPC_STATUS_INTERNAL;
                    set_details(r, "OK without a response message");
                } else {
                    grpc_byte_buffer_reader reader;

                    if (grpc_byte_buffer_reader_init(&reader, resp_bb)) {
                        grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
                        size_t n = GRPC_SLICE_LENGTH(all);

                        r->response = OPENSSL_malloc(n > 0 ? n : 1);
                        if (r->response != NULL) {
                            if (n > 0)
                                memcpy(r->response, GRPC_SLICE_START_PTR(all), n);
                            r->response_len = n;
                        }
                        grpc_slice_unref(all);
                        grpc_byte_buffer_reader_destroy(&reader);
                    }
                    if (r->response == NULL) {
                        r->status = GRPC_STATUS_INTERNAL;
                        set_details(r, "cannot read the response message");
                    }
                }
            }
        }
    }

    if (resp_bb != NULL)
        grpc_byte_buffer_destroy(resp_bb);
    grpc_byte_buffer_destroy(req_bb);
    grpc_slice_unref(details);
    gpr_free((void *)error_string);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type
           != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    return 1;
}

static int is_quorum(const CALL_RESULT *r)
{
    return strncmp(r->details, "quorum insufficient", 19) == 0;
}

static const char *status_name(grpc_status_code s)
{
    static const char *const names[] = { "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                         "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                         "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                         "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED" };

    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

static void log_outcome(QK_PROVCTX *ctx, const QK_KEY *key, int ok, double ms, const char *what)
{
    pid_t pid = getpid();
    int prev;

    pthread_mutex_lock(&g_mu);
    if (g_log_pid != pid) {
        g_log_pid = pid;
        g_log_state = 0;
    }
    prev = g_log_state;
    g_log_state = ok ? 1 : -1;
    pthread_mutex_unlock(&g_mu);
    if (ok && prev == 0)
        qk_log(ctx, "first signature: key '%s' via %s in %.1f ms (deadline %ld ms)", key->key_id, key->endpoint, ms,
               ctx->deadline_ms);
    else if (ok && prev < 0)
        qk_log(ctx, "signing works again: key '%s' via %s in %.1f ms", key->key_id, key->endpoint, ms);
    else if (!ok && prev >= 0)
        qk_log(ctx, "signing failed (further failures are not logged until it works again): %s", what);
}

int qk_client_sign(QK_PROVCTX *ctx, const QK_KEY *key, QK_MD md, const unsigned char *tbs, size_t tbslen,
                   const unsigned char *digest, size_t digestlen, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    Quorumkey__V1__SignRequest req = QUORUMKEY__V1__SIGN_REQUEST__INIT;
    Quorumkey__V1__SignResponse *resp = NULL;
    unsigned char *packed = NULL;
    size_t packed_len;
    grpc_channel *ch;
    CALL_RESULT r, first;
    double start = now_ms(), end_ms, elapsed;
    uint32_t reason = 0;
    char what[DETAILS_MAX + 200];
    int ok = 0, retried = 0;

    if (key->key_id == NULL) {
        QK_RAISE(ctx, QK_R_PUBLIC_KEY_ONLY, "no key reference to sign with");
        return 0;
    }
    req.key_id = key->key_id;
    switch (md) {
    case QK_MD_SHA384:
        req.digest_alg = QUORUMKEY__V1__DIGEST_ALGORITHM__SHA384;
        break;
    case QK_MD_SHA512:
        req.digest_alg = QUORUMKEY__V1__DIGEST_ALGORITHM__SHA512;
        break;
    default:
        req.digest_alg = QUORUMKEY__V1__DIGEST_ALGORITHM__SHA256;
        break;
    }
    if (digest != NULL) {
        req.digest.data = (uint8_t *)digest;
        req.digest.len = digestlen;
    } else {
        req.tbs.data = (uint8_t *)tbs;
        req.tbs.len = tbslen;
    }
    {
        /* The absolute deadline travels with the request (a retry keeps it): a coordinator that
         * reads the request late, stalled or swapped out, still knows when this caller gives up. */
        gpr_timespec wall = gpr_now(GPR_CLOCK_REALTIME);

        req.deadline_unix_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000 + ctx->deadline_ms;
    }
    packed_len = quorumkey__v1__sign_request__get_packed_size(&req);
    if ((packed = OPENSSL_malloc(packed_len > 0 ? packed_len : 1)) == NULL) {
        QK_RAISE(ctx, QK_R_INTERNAL, "out of memory");
        return 0;
    }
    quorumkey__v1__sign_request__pack(&req, packed);

    if ((ch = get_channel(ctx, key)) == NULL) {
        OPENSSL_free(packed);
        return 0;
    }
    end_ms = start + (double)ctx->deadline_ms;
    {
        gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                             gpr_time_from_millis(ctx->deadline_ms, GPR_TIMESPAN));

        if (!unary_call(ch, packed, packed_len, deadline, 0, &r)) {
            OPENSSL_free(packed);
            QK_RAISE(ctx, QK_R_INTERNAL, "%s", r.details);
            return 0;
        }
    }
    if (r.status == GRPC_STATUS_UNAVAILABLE && !is_quorum(&r)) {
        double left = end_ms - now_ms();

        if (left > 1.0) {
            long window = (long)(left < RETRY_WINDOW_MS ? left : RETRY_WINDOW_MS);
            gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                                 gpr_time_from_millis(window, GPR_TIMESPAN));

            first = r;
            retried = 1;
            if (!unary_call(ch, packed, packed_len, deadline, 1, &r)) {
                r = first;
            } else if (r.status == GRPC_STATUS_DEADLINE_EXCEEDED) {
                /* Still no connection after the retry window: report the transport's reason. */
                OPENSSL_free(r.response);
                r = first;
            }
        }
    }
    OPENSSL_free(packed);
    elapsed = now_ms() - start;

    switch (r.status) {
    case GRPC_STATUS_OK:
        resp = quorumkey__v1__sign_response__unpack(NULL, r.response_len, r.response);
        if (resp == NULL || resp->signature_der.len == 0 || resp->signature_der.len > QK_MAX_SIG_LEN) {
            reason = QK_R_BAD_RESPONSE;
            snprintf(what, sizeof(what), "key '%s' via %s: the response has no valid signature_der", key->key_id,
                     key->endpoint);
        } else if (resp->signature_der.len > sigsize) {
            reason = QK_R_BUFFER_TOO_SMALL;
            snprintf(what, sizeof(what), "signature of %zu bytes, buffer of %zu", resp->signature_der.len, sigsize);
        } else {
            memcpy(sig, resp->signature_der.data, resp->signature_der.len);
            *siglen = resp->signature_der.len;
            ok = 1;
        }
        break;
    case GRPC_STATUS_UNAVAILABLE:
        if (is_quorum(&r)) {
            reason = QK_R_QUORUM_INSUFFICIENT;
            snprintf(what, sizeof(what), "key '%s' via %s: %s", key->key_id, key->endpoint, r.details);
        } else {
            reason = QK_R_COORDINATOR_UNREACHABLE;
            snprintf(what, sizeof(what), "%s (key '%s'; %s%.0f ms): %s", key->endpoint, key->key_id,
                     retried ? "retried, " : "", elapsed, r.details);
        }
        break;
    case GRPC_STATUS_DEADLINE_EXCEEDED:
        reason = QK_R_DEADLINE_EXCEEDED;
        snprintf(what, sizeof(what), "no signature from %s for key '%s' within deadline_ms=%ld (%.0f ms): %s",
                 key->endpoint, key->key_id, ctx->deadline_ms, elapsed, r.details);
        break;
    case GRPC_STATUS_NOT_FOUND:
        reason = QK_R_KEY_NOT_FOUND;
        snprintf(what, sizeof(what), "the coordinator at %s does not know key '%s': %s", key->endpoint, key->key_id,
                 r.details);
        break;
    case GRPC_STATUS_PERMISSION_DENIED:
        reason = QK_R_POLICY_REFUSED;
        snprintf(what, sizeof(what), "key '%s' via %s: %s", key->key_id, key->endpoint, r.details);
        break;
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
        reason = QK_R_POOL_EXHAUSTED;
        snprintf(what, sizeof(what), "key '%s' via %s: %s", key->key_id, key->endpoint, r.details);
        break;
    case GRPC_STATUS_INVALID_ARGUMENT:
        reason = QK_R_REQUEST_REJECTED;
        snprintf(what, sizeof(what), "key '%s' via %s: %s", key->key_id, key->endpoint, r.details);
        break;
    case GRPC_STATUS_INTERNAL:
        reason = QK_R_COORDINATOR_INTERNAL;
        snprintf(what, sizeof(what), "key '%s' via %s: %s", key->key_id, key->endpoint, r.details);
        break;
    default:
        reason = QK_R_SIGN_FAILED;
        snprintf(what, sizeof(what), "key '%s' via %s: status %s: %s", key->key_id, key->endpoint,
                 status_name(r.status), r.details);
        break;
    }
    if (resp != NULL)
        quorumkey__v1__sign_response__free_unpacked(resp, NULL);
    OPENSSL_free(r.response);
    log_outcome(ctx, key, ok, elapsed, ok ? "" : what);
    if (!ok)
        QK_RAISE(ctx, reason, "%s", what);
    return ok;
}
