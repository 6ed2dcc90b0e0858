/*
 * One unary call of quorumkey.v1.Coordinator/Sign with the gRPC C core: the batch of six ops, what
 * it receives, and the blocking way to run it (a private completion queue, drained to
 * GRPC_QUEUE_SHUTDOWN). Every slice, byte buffer, reader, metadata array and status string is
 * released with the request.
 */
#include <stdio.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>

#include <openssl/crypto.h>

#include "call.h"
#include "qk.h"

#define SIGN_METHOD "/quorumkey.v1.Coordinator/Sign"
/* Only guards against a stuck library: the call's own deadline completes the batch. */
#define STUCK_GUARD_MS 5000

typedef struct {
    grpc_channel *channel;
    gpr_timespec deadline;
    int wait_for_ready;
    grpc_call *call;
    grpc_byte_buffer *request, *response;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string;
} QK_REQ;

static void result_set(QK_CALL_RESULT *r, grpc_status_code status, const char *details)
{
    r->status = status;
    snprintf(r->details, sizeof(r->details), "%s", details != NULL ? details : "");
}

static QK_REQ *req_new(grpc_channel *ch, const unsigned char *msg, size_t len, gpr_timespec deadline, int wait_for_ready)
{
    QK_REQ *req = OPENSSL_zalloc(sizeof(*req));
    grpc_slice slice;

    if (req == NULL)
        return NULL;
    req->channel = ch;
    req->deadline = deadline;
    req->wait_for_ready = wait_for_ready;
    slice = grpc_slice_from_copied_buffer((const char *)msg, len);
    req->request = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    req->details = grpc_empty_slice();
    req->status = GRPC_STATUS_UNKNOWN;
    grpc_metadata_array_init(&req->initial_md);
    grpc_metadata_array_init(&req->trailing_md);
    return req;
}

static void req_free(QK_REQ *req)
{
    if (req == NULL)
        return;
    if (req->call != NULL)
        grpc_call_unref(req->call);
    if (req->response != NULL)
        grpc_byte_buffer_destroy(req->response);
    grpc_byte_buffer_destroy(req->request);
    grpc_slice_unref(req->details);
    gpr_free((void *)req->error_string);
    grpc_metadata_array_destroy(&req->initial_md);
    grpc_metadata_array_destroy(&req->trailing_md);
    OPENSSL_free(req);
}

static int req_start(QK_REQ *req, grpc_completion_queue *cq, QK_CALL_RESULT *r)
{
    grpc_slice method = grpc_slice_from_static_string(SIGN_METHOD);
    grpc_op ops[6];
    grpc_call_error err;

    req->call = grpc_channel_create_call(req->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
                                         req->deadline, NULL);
    grpc_slice_unref(method);
    if (req->call == NULL) {
        result_set(r, GRPC_STATUS_INTERNAL, "cannot create a gRPC call");
        return 0;
    }
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].flags = req->wait_for_ready
                       ? GRPC_INITIAL_METADATA_WAIT_FOR_READY | GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET
                       : 0;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req->request;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &req->initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &req->response;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &req->trailing_md;
    ops[5].data.recv_status_on_client.status = &req->status;
    ops[5].data.recv_status_on_client.status_details = &req->details;
    ops[5].data.recv_status_on_client.error_string = &req->error_string;
    err = grpc_call_start_batch(req->call, ops, 6, req, NULL);
    if (err != GRPC_CALL_OK) {
        char msg[64];

        snprintf(msg, sizeof(msg), "grpc_call_start_batch: error %d", (int)err);
        result_set(r, GRPC_STATUS_INTERNAL, msg);
        return 0;
    }
    return 1;
}

/* Copies the value of `key` into out (truncated); 1 if present. */
static int find_md(const grpc_metadata_array *md, const char *key, char *out, size_t outsz)
{
    size_t i, n = strlen(key);

    for (i = 0; i < md->count; i++) {
        const grpc_slice *k = &md->metadata[i].key, *v = &md->metadata[i].value;

        if (GRPC_SLICE_LENGTH(*k) == n && memcmp(GRPC_SLICE_START_PTR(*k), key, n) == 0) {
            size_t m = GRPC_SLICE_LENGTH(*v) < outsz - 1 ? GRPC_SLICE_LENGTH(*v) : outsz - 1;

            memcpy(out, GRPC_SLICE_START_PTR(*v), m);
            out[m] = '\0';
            return 1;
        }
    }
    return 0;
}

static void req_result(QK_REQ *req, int success, QK_CALL_RESULT *r)
{
    char *d;

    if (!success) {
        result_set(r, GRPC_STATUS_INTERNAL, "the gRPC call did not complete");
        return;
    }
    d = grpc_slice_to_c_string(req->details);
    result_set(r, req->status, d != NULL && *d != '\0' ? d : req->error_string);
    gpr_free(d);
    /* A trailers-only answer may arrive as either array. */
    r->from_coordinator = req->status == GRPC_STATUS_OK
                          || find_md(&req->trailing_md, QK_COORDINATOR_STATUS_MD, r->kind, sizeof(r->kind))
                          || find_md(&req->initial_md, QK_COORDINATOR_STATUS_MD, r->kind, sizeof(r->kind));
    if (req->status != GRPC_STATUS_OK)
        return;
    if (req->response != NULL) {
        grpc_byte_buffer_reader reader;

        if (grpc_byte_buffer_reader_init(&reader, req->response)) {
            grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
            size_t n = GRPC_SLICE_LENGTH(all);

            if ((r->response = OPENSSL_malloc(n > 0 ? n : 1)) != NULL) {
                if (n > 0)
                    memcpy(r->response, GRPC_SLICE_START_PTR(all), n);
                r->response_len = n;
            }
            grpc_slice_unref(all);
            grpc_byte_buffer_reader_destroy(&reader);
        }
    }
    if (r->response == NULL)
        result_set(r, GRPC_STATUS_INTERNAL,
                           req->response == NULL ? "OK without a response message" : "cannot read the response message");
}

static void drain_and_destroy(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

/* The calling thread makes the call and waits for it. */
static void blocking_call(QK_REQ *req, QK_CALL_RESULT *r)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_event ev;

    if (cq == NULL) {
        result_set(r, GRPC_STATUS_INTERNAL, "cannot create a completion queue");
        return;
    }
    if (req_start(req, cq, r)) {
        gpr_timespec guard = gpr_time_add(gpr_convert_clock_type(req->deadline, GPR_CLOCK_MONOTONIC),
                                          gpr_time_from_millis(STUCK_GUARD_MS, GPR_TIMESPAN));

        ev = grpc_completion_queue_pluck(cq, req, guard, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT) {
            grpc_call_cancel(req->call, NULL);
            ev = grpc_completion_queue_pluck(cq, req, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        }
        req_result(req, ev.type == GRPC_OP_COMPLETE && ev.success, r);
    }
    /* The call must go before its queue is drained. */
    if (req->call != NULL) {
        grpc_call_unref(req->call);
        req->call = NULL;
    }
    drain_and_destroy(cq);
}

void qk_call(grpc_channel *ch, const unsigned char *msg, size_t len, gpr_timespec deadline, int wait_for_ready,
             QK_CALL_RESULT *r)
{
    QK_REQ *req;

    memset(r, 0, sizeof(*r));
    r->status = GRPC_STATUS_UNKNOWN;
    if ((req = req_new(ch, msg, len, deadline, wait_for_ready)) == NULL) {
        result_set(r, GRPC_STATUS_INTERNAL, "out of memory");
        return;
    }
    blocking_call(req, r);
    req_free(req);
}
