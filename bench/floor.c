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
 *   floor mq-pingpong-a Q1 Q2 CPU SIZE
 *                                    send SIZE bytes on Q1, receive the echo
 *                                    from Q2 (the timed side)
 *   floor mq-pingpong-b Q1 Q2 CPU    receive from Q1, send it back on Q2
 *   floor mq-pingpong-wait-a Q1 Q2 CPU SIZE, floor mq-pingpong-wait-b Q1 Q2 CPU
 *                                    the same, making the calls namedipc's
 *                                    MessageQueue makes: a send or receive
 *                                    that does not wait, and where the queue
 *                                    is full or empty, a second such try,
 *                                    then ppoll on it and on an eventfd
 *                                    (what lets close() end a wait), then
 *                                    the send or receive again
 *   floor mq-create NAME MAXMSG MSGSIZE
 *                                    mq_open(O_CREAT|O_EXCL) with those limits
 *                                    + mq_close + mq_unlink
 *   floor mq-open NAME               mq_open of an existing queue + mq_close
 *   floor sem-create NAME            sem_open(O_CREAT|O_EXCL, value 0) + sem_unlink
 *                                    + sem_close
 *   floor sem-open NAME              sem_open of an existing semaphore + sem_close
 * The semaphores, queues, and the segment of shm-open, must already exist;
 * shm-create, mq-create and sem-create leave nothing behind (bench.py creates and unlinks
 * everything, and unlinks NAME on failure).
 *
 * Protocol, the same as bench/pingpong_partner.py's: read a count N per line
 * from stdin; every mode but the b sides runs N iterations and answers with
 * the elapsed nanoseconds; "pingpong-b" and "mq-pingpong-b" answer "ready"
 * and then serve N round trips. EOF on stdin ends the process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
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
static mqd_t q1, q2;
static const char *mq_name;
static const char *sem_name;
static struct mq_attr mq_limits;
static char *message; /* what side a sends; both sides receive into it */
static size_t message_size;
static long message_capacity; /* the queues' mq_msgsize */

static mqd_t open_mq(const char *name) {
    mqd_t mqd = mq_open(name, O_RDWR);
    if (mqd == (mqd_t)-1) {
        die("mq_open", name);
    }
    return mqd;
}

/* The eventfd of the mq-pingpong-wait modes (-1: the plain modes), which
 * nothing ever makes readable: it is there because namedipc polls one. */
static int waker = -1;
static const struct timespec no_wait = {0, 0};

/* namedipc's wait for a queue that was full or empty: ppoll on the eventfd
 * and the queue, until the queue is ready. */
static void poll_mq(mqd_t mqd, short events) {
    struct pollfd fds[2] = {{waker, POLLIN, 0}, {(int)mqd, events, 0}};
    while (ppoll(fds, 2, NULL, NULL) < 0) {
        if (errno != EINTR) {
            die("ppoll", "");
        }
    }
}

/* mq_receive into `message`; retried on EINTR as wait_sem is. */
static ssize_t receive_mq(mqd_t mqd) {
    ssize_t got;
    if (waker >= 0) {
        int tries = 0;
        while ((got = mq_timedreceive(mqd, message, message_capacity, NULL, &no_wait)) < 0) {
            if (errno == ETIMEDOUT) {
                /* The binding tries, and the core once more, before the first ppoll. */
                if (++tries >= 2) {
                    poll_mq(mqd, POLLIN);
                }
            } else if (errno != EINTR) {
                die("mq_timedreceive", "");
            }
        }
        return got;
    }
    while ((got = mq_receive(mqd, message, message_capacity, NULL)) < 0) {
        if (errno != EINTR) {
            die("mq_receive", "");
        }
    }
    return got;
}

static void send_mq(mqd_t mqd, size_t size) {
    if (waker >= 0) {
        int tries = 0;
        while (mq_timedsend(mqd, message, size, 0, &no_wait) != 0) {
            if (errno == ETIMEDOUT) {
                if (++tries >= 2) {
                    poll_mq(mqd, POLLOUT);
                }
            } else if (errno != EINTR) {
                die("mq_timedsend", "");
            }
        }
        return;
    }
    while (mq_send(mqd, message, size, 0) != 0) {
        if (errno != EINTR) {
            die("mq_send", "");
        }
    }
}

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

static void pong(long n) {
    for (long i = 0; i < n; i++) {
        wait_sem(s1);
        post_sem(s2);
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

/* One request/response per iteration: the Python side a's
 * send(message) + receive(). */
static void mq_ping(long n) {
    for (long i = 0; i < n; i++) {
        send_mq(q1, message_size);
        if ((size_t)receive_mq(q2) != message_size) {
            fputs("floor: mq-pingpong-a: the echo has the wrong length\n", stderr);
            exit(2);
        }
    }
    /* The echo came back into the buffer it was sent from: once per sample,
     * check that it still holds what was sent. */
    for (size_t i = 0; i < message_size; i++) {
        if (message[i] != 'x') {
            fputs("floor: mq-pingpong-a: the echo differs from the message\n", stderr);
            exit(2);
        }
    }
}

/* The Python side b's send(receive()[0]): the message goes back as it came. */
static void mq_pong(long n) {
    for (long i = 0; i < n; i++) {
        send_mq(q2, (size_t)receive_mq(q1));
    }
}

/* MessageQueue(name, O_CREX, 0o600, MAXMSG, MSGSIZE) + close + unlink. */
static void mq_create(long n) {
    for (long i = 0; i < n; i++) {
        mqd_t mqd = mq_open(mq_name, O_RDWR | O_CREAT | O_EXCL, 0600, &mq_limits);
        if (mqd == (mqd_t)-1) {
            die("mq_open", mq_name);
        }
        mq_close(mqd);
        if (mq_unlink(mq_name) != 0) {
            die("mq_unlink", mq_name);
        }
    }
}

/* MessageQueue(name) + close on a queue that exists. */
static void mq_reopen(long n) {
    for (long i = 0; i < n; i++) {
        mq_close(open_mq(mq_name));
    }
}

/* Semaphore(name, O_CREX, 0o600, 0) + unlink + close. */
static void sem_create(long n) {
    for (long i = 0; i < n; i++) {
        sem_t *sem = sem_open(sem_name, O_CREAT | O_EXCL, 0600, 0);
        if (sem == SEM_FAILED) {
            die("sem_open", sem_name);
        }
        if (sem_unlink(sem_name) != 0) {
            die("sem_unlink", sem_name);
        }
        sem_close(sem);
    }
}

/* Semaphore(name) + close on a semaphore that exists. */
static void sem_reopen(long n) {
    for (long i = 0; i < n; i++) {
        sem_close(open_sem(sem_name));
    }
}

static int usage(void) {
    fputs("usage: floor uncontended SEM | floor pingpong-a|pingpong-b S1 S2 CPU\n"
          "     | floor shm-create NAME SIZE | floor shm-open NAME\n"
          "     | floor mq-pingpong-a Q1 Q2 CPU SIZE | floor mq-pingpong-b Q1 Q2 CPU\n"
          "     | floor mq-pingpong-wait-a Q1 Q2 CPU SIZE | floor mq-pingpong-wait-b Q1 Q2 CPU\n"
          "     | floor mq-create NAME MAXMSG MSGSIZE | floor mq-open NAME\n"
          "     | floor sem-create NAME | floor sem-open NAME\n",
          stderr);
    return 2;
}

int main(int argc, char **argv) {
    void (*timed)(long) = NULL; /* NULL: a b side, which serves untimed */
    void (*serve)(long) = NULL; /* what a b side serves */
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
        } else {
            serve = pong;
        }
    } else if ((argc == 6 && (strcmp(argv[1], "mq-pingpong-a") == 0 ||
                              strcmp(argv[1], "mq-pingpong-wait-a") == 0)) ||
               (argc == 5 && (strcmp(argv[1], "mq-pingpong-b") == 0 ||
                              strcmp(argv[1], "mq-pingpong-wait-b") == 0))) {
        struct mq_attr attr;
        if (strstr(argv[1], "-wait-") != NULL) {
            waker = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            if (waker < 0) {
                die("eventfd", "");
            }
        }
        q1 = open_mq(argv[2]);
        q2 = open_mq(argv[3]);
        pin(argv[4]);
        if (mq_getattr(q1, &attr) != 0) {
            die("mq_getattr", argv[2]);
        }
        message_capacity = attr.mq_msgsize;
        message = calloc(1, (size_t)message_capacity);
        if (message == NULL) {
            die("calloc", argv[2]);
        }
        if (argc == 6) {
            message_size = (size_t)atol(argv[5]);
            if (message_size > (size_t)message_capacity) {
                errno = EMSGSIZE;
                die("mq-pingpong-a", argv[5]);
            }
            memset(message, 'x', message_size);
            timed = mq_ping;
        } else {
            serve = mq_pong;
        }
    } else if (argc == 5 && strcmp(argv[1], "mq-create") == 0) {
        mq_name = argv[2];
        mq_limits.mq_maxmsg = atol(argv[3]);
        mq_limits.mq_msgsize = atol(argv[4]);
        timed = mq_create;
    } else if (argc == 3 && strcmp(argv[1], "mq-open") == 0) {
        mq_name = argv[2];
        timed = mq_reopen;
    } else if (argc == 4 && strcmp(argv[1], "shm-create") == 0) {
        shm_name = argv[2];
        shm_size = (off_t)atoll(argv[3]);
        timed = shm_create;
    } else if (argc == 3 && strcmp(argv[1], "shm-open") == 0) {
        shm_name = argv[2];
        timed = shm_reopen;
    } else if (argc == 3 && strcmp(argv[1], "sem-create") == 0) {
        sem_name = argv[2];
        timed = sem_create;
    } else if (argc == 3 && strcmp(argv[1], "sem-open") == 0) {
        sem_name = argv[2];
        timed = sem_reopen;
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
            serve(n);
            continue;
        }
        start = now_ns();
        timed(n);
        printf("%lld\n", now_ns() - start);
        fflush(stdout);
    }
    return 0;
}
