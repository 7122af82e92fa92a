/* C floor for bench/bench.py: the same semaphore work as the Python rows,
 * with no interpreter in the way, so the Python timings can be read against
 * what glibc and the kernel cost by themselves.
 *
 * Built by bench.py (gcc -O2 -pthread) into bench/out/. Usage:
 *   floor uncontended SEM            sem_wait + sem_post on a free semaphore
 *   floor pingpong-a S1 S2 CPU       post S1, wait S2 (the timed side)
 *   floor pingpong-b S1 S2 CPU       wait S1, post S2 (the partner)
 * The semaphores must already exist (bench.py creates and unlinks them).
 *
 * Protocol, the same as bench/pingpong_partner.py's: read a count N per line
 * from stdin; "uncontended" and "pingpong-a" run N iterations and answer
 * with the elapsed nanoseconds; "pingpong-b" answers "ready" and then serves
 * N round trips. EOF on stdin ends the process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static sem_t *open_sem(const char *name) {
    sem_t *sem = sem_open(name, 0);
    if (sem == SEM_FAILED) {
        fprintf(stderr, "floor: sem_open(%s): %s\n", name, strerror(errno));
        exit(2);
    }
    return sem;
}

/* A signal never interrupts these waits in practice (no handlers are
 * installed), but retrying keeps the loop correct if one ever does. */
static void wait_sem(sem_t *sem) {
    while (sem_wait(sem) != 0) {
        if (errno != EINTR) {
            perror("floor: sem_wait");
            exit(2);
        }
    }
}

static void post_sem(sem_t *sem) {
    if (sem_post(sem) != 0) {
        perror("floor: sem_post");
        exit(2);
    }
}

static void pin(const char *cpu_arg) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(atoi(cpu_arg), &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        perror("floor: sched_setaffinity");
        exit(2);
    }
}

static int usage(void) {
    fputs("usage: floor uncontended SEM | floor pingpong-a|pingpong-b S1 S2 CPU\n", stderr);
    return 2;
}

int main(int argc, char **argv) {
    enum { UNCONTENDED, PING, PONG } mode;
    sem_t *s1, *s2 = NULL;
    char line[64];

    if (argc == 3 && strcmp(argv[1], "uncontended") == 0) {
        mode = UNCONTENDED;
    } else if (argc == 5 && strcmp(argv[1], "pingpong-a") == 0) {
        mode = PING;
    } else if (argc == 5 && strcmp(argv[1], "pingpong-b") == 0) {
        mode = PONG;
    } else {
        return usage();
    }
    s1 = open_sem(argv[2]);
    if (mode != UNCONTENDED) {
        s2 = open_sem(argv[3]);
        pin(argv[4]);
    }

    while (fgets(line, sizeof line, stdin) != NULL) {
        long n = atol(line);
        long long start;
        if (mode == PONG) {
            /* Answer before serving: the timed side starts only once this
             * side is past its stdin read, so the read is not timed. */
            printf("ready\n");
            fflush(stdout);
            for (long i = 0; i < n; i++) {
                wait_sem(s1);
                post_sem(s2);
            }
            continue;
        }
        start = now_ns();
        if (mode == PING) {
            for (long i = 0; i < n; i++) {
                post_sem(s1);
                wait_sem(s2);
            }
        } else {
            for (long i = 0; i < n; i++) {
                wait_sem(s1);
                post_sem(s1);
            }
        }
        printf("%lld\n", now_ns() - start);
        fflush(stdout);
    }
    return 0;
}
