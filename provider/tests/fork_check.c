/*
 * qk-fork-check KEYREF: what nginx and HAProxy do with a quorumkey key, in one program.
 *
 *  1. load the key the way they do (PEM_read_bio_PrivateKey, with OPENSSL_CONF loading the
 *     provider) and check that loading started no thread: gRPC was not initialised;
 *  2. fork two workers; each signs from 4 threads at once (HAProxy runs threads) and verifies
 *     every signature with the default provider;
 *  3. the parent, which never signed before forking, signs too;
 *  4. a process forked after its parent signed gets a clear error instead of a hang.
 *
 * The key's policy must allow raw-digest (prehashed EVP_PKEY_sign). Exit status 0: all as expected.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define THREADS 4
#define PER_THREAD 5

static EVP_PKEY *key, *pub;

static int threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int sign_once(int quiet)
{
    unsigned char dgst[32], sig[80];
    size_t siglen = sizeof(sig);
    char msg[64];
    EVP_PKEY_CTX *sctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    EVP_PKEY_CTX *vctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, "provider=default");
    int ok;

    snprintf(msg, sizeof(msg), "fork check %ld %lu", (long)getpid(), (unsigned long)pthread_self());
    EVP_Digest(msg, strlen(msg), dgst, NULL, EVP_sha256(), NULL);
    ok = sctx != NULL && vctx != NULL && EVP_PKEY_sign_init(sctx) > 0 && EVP_PKEY_sign(sctx, sig, &siglen, dgst, 32) > 0
         && EVP_PKEY_verify_init(vctx) > 0 && EVP_PKEY_verify(vctx, sig, siglen, dgst, 32) == 1;
    if (!ok && !quiet)
        ERR_print_errors_fp(stderr);
    EVP_PKEY_CTX_free(sctx);
    EVP_PKEY_CTX_free(vctx);
    return ok;
}

static void *worker_thread(void *arg)
{
    int i, *fails = arg;

    for (i = 0; i < PER_THREAD; i++)
        if (!sign_once(0))
            __atomic_add_fetch(fails, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static int worker(void)
{
    pthread_t t[THREADS];
    int i, fails = 0;

    for (i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker_thread, &fails);
    for (i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("worker %ld: %d signatures, %d failed\n", (long)getpid(), THREADS * PER_THREAD, fails);
    fflush(stdout);
    return fails == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    BIO *in;
    unsigned char *der = NULL;
    const unsigned char *p;
    int derlen, threads, i, status, failed = 0;
    pid_t pids[2], late;
    unsigned long err;
    char buf[256];

    if (argc != 2) {
        fprintf(stderr, "usage: %s KEYREF.pem\n", argv[0]);
        return 2;
    }
    if ((in = BIO_new_file(argv[1], "r")) == NULL || (key = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL)) == NULL) {
        ERR_print_errors_fp(stderr);
        return 2;
    }
    BIO_free(in);
    /* A default-provider copy of the public key, to verify with. */
    derlen = i2d_PUBKEY(key, &der);
    p = der;
    if (derlen <= 0 || (pub = d2i_PUBKEY_ex(NULL, &p, derlen, NULL, "provider=default")) == NULL) {
        ERR_print_errors_fp(stderr);
        return 2;
    }
    OPENSSL_free(der);
    threads = threads_now();
    printf("threads after loading the key: %d\n", threads);
    if (threads != 1) {
        printf("FAIL: loading the key started threads (gRPC initialised before fork?)\n");
        failed = 1;
    }
    fflush(stdout);

    for (i = 0; i < 2; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            _exit(worker());
    }
    for (i = 0; i < 2; i++) {
        if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            printf("FAIL: worker %ld did not sign cleanly\n", (long)pids[i]);
            failed = 1;
        }
    }

    if (!sign_once(0)) {
        printf("FAIL: the parent cannot sign after its workers did\n");
        failed = 1;
    } else {
        printf("parent %ld: signed after forking workers\n", (long)getpid());
    }
    fflush(stdout);

    late = fork();
    if (late == 0) {
        int ok = sign_once(1);

        err = ERR_peek_last_error();
        ERR_error_string_n(err, buf, sizeof(buf));
        printf("late child: %s (%s)\n", ok ? "signed" : "refused", ok ? "" : buf);
        fflush(stdout);
        ERR_print_errors_fp(stdout);
        _exit(!ok && strstr(buf, "forked after using gRPC") != NULL ? 0 : 1);
    }
    if (waitpid(late, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("FAIL: a process forked after signing should get a clear 'forked after using gRPC' error\n");
        failed = 1;
    }
    EVP_PKEY_free(key);
    EVP_PKEY_free(pub);
    printf("%s\n", failed ? "FAILED" : "OK");
    return failed;
}
