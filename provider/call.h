/*
 * One unary Coordinator/Sign call (call.c).
 */
#ifndef QK_CALL_H
#define QK_CALL_H

#include <stddef.h>

#include <grpc/grpc.h>
#include <grpc/support/time.h>

#define QK_DETAILS_MAX 480
/* Trailing metadata the coordinator puts on each status it answers (src/transport/proto.ts). */
#define QK_COORDINATOR_STATUS_MD "qk-coordinator-status"

typedef struct {
    grpc_status_code status;
    int from_coordinator;        /* the coordinator answered (OK or marked status); 0: transport */
    char kind[32];               /* the coordinator's error name (QK_COORDINATOR_STATUS_MD), or "" */
    char details[QK_DETAILS_MAX];
    unsigned char *response;     /* serialized SignResponse (OPENSSL_free) */
    size_t response_len;
} QK_CALL_RESULT;

/* Blocking: the calling thread makes the call and waits for it. */
void qk_call(grpc_channel *ch, const unsigned char *msg, size_t len, gpr_timespec deadline, int wait_for_ready,
             QK_CALL_RESULT *r);

#endif
