/*
 * sem_c_peer: a plain C program that works on a named POSIX semaphore with
 * the C library's own sem_* calls, for tests/test_c_interop.py.
 *
 *     sem_c_peer create NAME VALUE     sem_open(O_CREAT | O_EXCL, 0600, VALUE); prints "created"
 *     sem_c_peer post NAME             sem_post; prints "posted"
 *     sem_c_peer wait NAME TIMEOUT     sem_timedwait for at most TIMEOUT seconds (decimal);
 *                                      prints "acquired" or "timeout"
 *     sem_c_peer value NAME            sem_getvalue; prints the value
 *     sem_c_peer hold NAME             sem_wait (no time limit); prints "held", then reads
 *                                      one line from stdin, sem_post, prints "released"
 *
 * Every command but create opens an existing semaphore (sem_open(NAME, 0)).
 * On an error it prints "sem_c_peer: <call>(NAME): <strerror> (errno N)" to
 * stderr and exits with status 1.
 *
 * Build: gcc -std=c11 -Wall -Wextra -Werror -o sem_c_peer sem_c_peer.c -pthread
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(const char *call, const char *name)
{
    int err = errno;
    fprintf(stderr, "sem_c_peer: %s(%s): %s (errno %d)\n", call, name, strerror(err), err);
    return 1;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: sem_c_peer create NAME VALUE | post NAME | wait NAME TIMEOUT | value NAME"
            " | hold NAME\n");
    return 1;
}

static sem_t *open_existing(const char *name)
{
    return sem_open(name, 0);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const char *command = argv[1];
    const char *name = argv[2];

    if (strcmp(command, "create") == 0 && argc == 4) {
        char *end = NULL;
        errno = 0;
        unsigned long value = strtoul(argv[3], &end, 10);
        if (errno != 0 || end == argv[3] || *end != '\0' || value > 0x7fffffffUL)
            return usage();
        sem_t *sem = sem_open(name, O_CREAT | O_EXCL, 0600, (unsigned int)value);
        if (sem == SEM_FAILED)
            return fail("sem_open", name);
        sem_close(sem);
        puts("created");
        return 0;
    }

    if (strcmp(command, "post") == 0 && argc == 3) {
        sem_t *sem = open_existing(name);
        if (sem == SEM_FAILED)
            return fail("sem_open", name);
        if (sem_post(sem) != 0)
            return fail("sem_post", name);
        sem_close(sem);
        puts("posted");
        return 0;
    }

    if (strcmp(command, "wait") == 0 && argc == 4) {
        char *end = NULL;
        double timeout = strtod(argv[3], &end);
        if (end == argv[3] || *end != '\0' || !(timeout >= 0.0) || timeout > 1e6)
            return usage();
        sem_t *sem = open_existing(name);
        if (sem == SEM_FAILED)
            return fail("sem_open", name);
        struct timespec deadline;
        if (clock_gettime(CLOCK_REALTIME, &deadline) != 0)
            return fail("clock_gettime", name);
        time_t whole = (time_t)timeout; /* timeout >= 0: truncation is floor */
        deadline.tv_sec += whole;
        deadline.tv_nsec += (long)((timeout - (double)whole) * 1e9);
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec += 1;
            deadline.tv_nsec -= 1000000000L;
        }
        int ret;
        while ((ret = sem_timedwait(sem, &deadline)) != 0 && errno == EINTR)
            ;
        if (ret != 0 && errno != ETIMEDOUT)
            return fail("sem_timedwait", name);
        sem_close(sem);
        puts(ret == 0 ? "acquired" : "timeout");
        return 0;
    }

    if (strcmp(command, "value") == 0 && argc == 3) {
        sem_t *sem = open_existing(name);
        if (sem == SEM_FAILED)
            return fail("sem_open", name);
        int value = 0;
        if (sem_getvalue(sem, &value) != 0)
            return fail("sem_getvalue", name);
        sem_close(sem);
        printf("%d\n", value);
        return 0;
    }

    if (strcmp(command, "hold") == 0 && argc == 3) {
        sem_t *sem = open_existing(name);
        if (sem == SEM_FAILED)
            return fail("sem_open", name);
        while (sem_wait(sem) != 0)
            if (errno != EINTR)
                return fail("sem_wait", name);
        puts("held");
        fflush(stdout);
        char line[64];
        if (fgets(line, sizeof line, stdin) == NULL) {
            /* Stdin closed: release anyway, so that nobody is left waiting. */
        }
        if (sem_post(sem) != 0)
            return fail("sem_post", name);
        sem_close(sem);
        puts("released");
        return 0;
    }

    return usage();
}
