/*
 * Asynchronous signing inside OpenSSL ASYNC jobs (DESIGN §8): HAProxy `ssl-mode-async`,
 * `openssl s_server -async`.
 *
 * Called in a job, the provider does not block the server thread: it registers an eventfd with
 * the job's ASYNC_WAIT_CTX (once per wait context, kept until the context is freed, as the server
 * polls it across jobs), runs the signature request on a thread of its own and pauses the job; the
 * server resumes the job once the eventfd is readable. No gRPC function runs on the job's small
 * stack (32 KiB), not even the lazy grpc_init of a process's first signature.
 *
 * Lifetimes. An operation has two references: the job's and its thread's. While the job is paused
 * its reference sits in the waiter's `pending` slot, so that a wait context freed with the job
 * still paused (the connection was closed: SSL_free never resumes the job) releases it in the
 * cleanup callback; the operation's data is released with the last reference. The waiter
 * (eventfd) has one reference from the wait context and one per operation; the fd is closed with
 * the last, so a late completion never writes to a closed (or reused) descriptor.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/async.h>
#include <openssl/crypto.h>

#include "async.h"

/* A resume that finds the answer not there yet (the pause was blocked, or the job was resumed for
 * another reason) waits this long on the eventfd before it pauses again. */
#define RECHECK_MS 10

typedef struct {
    atomic_int refs;
    int fd;
    pthread_mutex_t mu;
    struct qk_async_st *pending;  /* the paused job's operation (the job's reference) */
} WAITER;

struct qk_async_st {
    atomic_int refs;
    void (*run)(void *);
    void *arg;
    void (*release)(void *);
    WAITER *waiter;
    atomic_int done;
};

static const char waiter_key = 0; /* identifies our fd in a wait context */

static void waiter_unref(WAITER *w)
{
    if (atomic_fetch_sub(&w->refs, 1) != 1)
        return;
    close(w->fd);
    pthread_mutex_destroy(&w->mu);
    OPENSSL_free(w);
}

static void op_unref(QK_ASYNC *op)
{
    if (atomic_fetch_sub(&op->refs, 1) != 1)
        return;
    op->release(op->arg);
    waiter_unref(op->waiter);
    OPENSSL_free(op);
}

static void *op_thread(void *vop)
{
    QK_ASYNC *op = vop;
    uint64_t one = 1;

    op->run(op->arg);
    /* done before the signal: a resumed job that drained a signal and sees done 0 saw a stale one. */
    atomic_store(&op->done, 1);
    if (write(op->waiter->fd, &one, sizeof(one)) < 0) {
        /* cannot fail: one write per operation never fills the counter */
    }
    op_unref(op);
    return NULL;
}

static int start_thread(QK_ASYNC *op)
{
    pthread_t t;
    pthread_attr_t attr;
    int ok;

    if (pthread_attr_init(&attr) != 0)
        return 0;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    ok = pthread_create(&t, &attr, op_thread, op) == 0;
    pthread_attr_destroy(&attr);
    return ok;
}

/* ASYNC_WAIT_CTX_free: the wait context goes, possibly with its job still paused on our fd. */
static void waiter_cleanup(ASYNC_WAIT_CTX *ctx, const void *key, OSSL_ASYNC_FD fd, void *data)
{
    WAITER *w = data;
    QK_ASYNC *orphan;

    (void)ctx;
    (void)key;
    (void)fd;
    pthread_mutex_lock(&w->mu);
    orphan = w->pending;
    w->pending = NULL;
    pthread_mutex_unlock(&w->mu);
    if (orphan != NULL)
        op_unref(orphan);   /* the reference of a job that will never resume */
    waiter_unref(w);
}

/* The waiter registered with this wait context, registering one on first use. */
static WAITER *waiter_of(ASYNC_WAIT_CTX *wctx)
{
    OSSL_ASYNC_FD fd;
    void *data = NULL;
    WAITER *w;

    if (ASYNC_WAIT_CTX_get_fd(wctx, &waiter_key, &fd, &data) && data != NULL)
        return data;
    if ((w = OPENSSL_zalloc(sizeof(*w))) == NULL)
        return NULL;
    if ((w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        OPENSSL_free(w);
        return NULL;
    }
    atomic_init(&w->refs, 1);
    pthread_mutex_init(&w->mu, NULL);
    if (!ASYNC_WAIT_CTX_set_wait_fd(wctx, &waiter_key, w->fd, w, waiter_cleanup)) {
        waiter_unref(w);
        return NULL;
    }
    return w;
}

static void drain(int fd)
{
    uint64_t v;

    while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
}

QK_ASYNC *qk_async_start(void (*run)(void *), void *arg, void (*release)(void *), int *in_job)
{
    ASYNC_JOB *job = ASYNC_get_current_job();
    ASYNC_WAIT_CTX *wctx = job != NULL ? ASYNC_get_wait_ctx(job) : NULL;
    WAITER *w;
    QK_ASYNC *op;

    *in_job = wctx != NULL;
    if (wctx == NULL || (w = waiter_of(wctx)) == NULL)
        return NULL;
    if ((op = OPENSSL_zalloc(sizeof(*op))) == NULL)
        return NULL;
    op->run = run;
    op->arg = arg;
    op->release = release;
    atomic_init(&op->refs, 2);  /* the job's (in w->pending while paused) and the thread's */
    atomic_init(&op->done, 0);
    atomic_fetch_add(&w->refs, 1);
    op->waiter = w;
    pthread_mutex_lock(&w->mu);
    w->pending = op;
    pthread_mutex_unlock(&w->mu);
    drain(w->fd);   /* a late signal of this context's previous operation */
    if (!start_thread(op)) {
        pthread_mutex_lock(&w->mu);
        w->pending = NULL;
        pthread_mutex_unlock(&w->mu);
        /* Not started: the caller keeps its argument. */
        waiter_unref(w);
        OPENSSL_free(op);
        return NULL;
    }
    return op;
}

void *qk_async_wait(QK_ASYNC *op)
{
    WAITER *w = op->waiter;
    int mine;

    while (!atomic_load(&op->done)) {
        ASYNC_pause_job();
        if (!atomic_load(&op->done)) {
            struct pollfd p = { .fd = w->fd, .events = POLLIN };

            /* Resumed early (for another reason, or the pause was blocked): wait a little here. */
            drain(w->fd);
            if (!atomic_load(&op->done))
                poll(&p, 1, RECHECK_MS);
        }
    }
    drain(w->fd);
    pthread_mutex_lock(&w->mu);
    mine = w->pending == op;
    if (mine)
        w->pending = NULL;
    pthread_mutex_unlock(&w->mu);
    /* Only SSL_free frees a wait context, and it never resumes the job: always ours. */
    return mine ? op->arg : NULL;
}

void qk_async_finish(QK_ASYNC *op)
{
    op_unref(op);
}
