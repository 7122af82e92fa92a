/* C floor for bench/bench.py: the same work as the Python rows, with no
 * interpreter in the way, so the Python timings can be read against what
 * glibc and the kernel cost by themselves.
 *
 * Built by bench.py (gcc -O2 -pthread ... -lrt) into bench/out/. Usage:
 *   floor uncontended SEM            sem_wait + sem_post on a free semaphore
 *   floor pingpong-a S1 S2 CPU       post S1, wait S2 (the timed side)
 *   floor pingpong-b S1 S2 CPU       wait S1, post S2 (the partner)
 *   floor shm-create NAME SIZE       shm_open(O_CREAT|O_EXCL) + ftruncate(SIZE)
 *                                    + close + shm_unlink
 *   floor shm-open NAME              shm_open of an existing segment + close
 * The semaphores, and the segment of shm-open, must already exist; shm-create
 * leaves nothing behind (bench.py creates and unlinks everything, and
 * unlinks NAME on failure).
 *
 * Protocol, the same as bench/pingpong_partner.py's: read a count N per line
 * from stdin; every mode but "pingpong-b" runs N iterations and answers with
 * the elapsed nanoseconds; "pingpong-b" answers "ready" and then serves N
 * round trips. EOF on stdin ends the process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what, const char *name) {
    fprintf(stderr, "floor: %s(%s): %s\n", what, name, strerror(errno));
    exit(2);
}

static sem_t *open_sem(const char *name) {
    sem_t *sem = sem_open(name, 0);
    if (sem == SEM_FAILED) {
        die("sem_open", name);
    }
    return sem;
}

/* A signal never interrupts these waits in practice (no handlers are
 * installed), but retrying keeps the loop correct if one ever does. */
static void wait_sem(sem_t *sem) {
    while (sem_wait(sem) != 0) {
        if (errno != EINTR) {
            die("sem_wait", "");
        }
    }
}

static void post_sem(sem_t *sem) {
    if (sem_post(sem) != 0) {
        die("sem_post", "");
    }
}

static void pin(const char *cpu_arg) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(atoi(cpu_arg), &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        die("sched_setaffinity", cpu_arg);
    }
}

/* What a mode works on, set up once from the command line. */
static sem_t *s1, *s2;
static const char *shm_name;
static off_t shm_size;

static void uncontended(long n) {
    for (long i = 0; i < n; i++) {
        wait_sem(s1);
        post_sem(s1);
    }
}

static void ping(long n) {
    for (long i = 0; i < n; i++) {
        post_sem(s1);
        wait_sem(s2);
    }
}

/* The create cycle as posix_ipc and namedipc do it for
 * SharedMemory(name, O_CREX, size=SIZE) + close + unlink: glibc's shm_open
 * adds O_NOFOLLOW|O_CLOEXEC itself, as both libraries' opens have them. */
static void shm_create(long n) {
    for (long i = 0; i < n; i++) {
        int fd = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0) {
            die("shm_open", shm_name);
        }
        if (ftruncate(fd, shm_size) != 0) {
            die("ftruncate", shm_name);
        }
        close(fd);
        if (shm_unlink(shm_name) != 0) {
            die("shm_unlink", shm_name);
        }
    }
}

/* SharedMemory(name) + close on a segment that exists. */
static void shm_reopen(long n) {
    for (long i = 0; i < n; i++) {
        int fd = shm_open(shm_name, O_RDWR, 0);
        if (fd < 0) {
            die("shm_open", shm_name);
        }
        close(fd);
    }
}

static int usage(void) {
    fputs("usage: floor uncontended SEM | floor pingpong-a|pingpong-b S1 S2 CPU\n"
          "     | floor shm-create NAME SIZE | floor shm-open NAME\n",
          stderr);
    return 2;
}

int main(int argc, char **argv) {
    void (*timed)(long) = NULL; /* NULL: pingpong-b, which serves untimed */
    char line[64];

    if (argc == 3 && strcmp(argv[1], "uncontended") == 0) {
        s1 = open_sem(argv[2]);
        timed = uncontended;
    } else if (argc == 5 && (strcmp(argv[1], "pingpong-a") == 0 ||
                             strcmp(argv[1], "pingpong-b") == 0)) {
        s1 = open_sem(argv[2]);
        s2 = open_sem(argv[3]);
        pin(argv[4]);
        if (strcmp(argv[1], "pingpong-a") == 0) {
            timed = ping;
        }
    } else if (argc == 4 && strcmp(argv[1], "shm-create") == 0) {
        shm_name = argv[2];
        shm_size = (off_t)atoll(argv[3]);
        timed = shm_create;
    } else if (argc == 3 && strcmp(argv[1], "shm-open") == 0) {
        shm_name = argv[2];
        timed = shm_reopen;
    } else {
        return usage();
    }

    while (fgets(line, sizeof line, stdin) != NULL) {
        long n = atol(line);
        long long start;
        if (timed == NULL) {
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
        timed(n);
        printf("%lld\n", now_ns() - start);
        fflush(stdout);
    }
    return 0;
}
