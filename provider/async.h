/*
 * Work run on a provider thread while the current OpenSSL ASYNC job is paused (async.c).
 */
#ifndef QK_ASYNC_H
#define QK_ASYNC_H

typedef struct qk_async_st QK_ASYNC;

/*
 * Inside an ASYNC job with a wait context (*in_job = 1): starts run(arg) on a provider thread and
 * returns the operation, which owns arg from now on (release(arg) frees it with the operation), or
 * NULL if it cannot. Outside a job (*in_job = 0): NULL. With NULL, arg stays the caller's.
 */
QK_ASYNC *qk_async_start(void (*run)(void *), void *arg, void (*release)(void *), int *in_job);
/* Pauses the job until run(arg) has returned; then arg, valid until qk_async_finish. NULL: the
 * operation was taken from the job (its wait context was freed): do not call qk_async_finish. */
void *qk_async_wait(QK_ASYNC *op);
void qk_async_finish(QK_ASYNC *op);

#endif
