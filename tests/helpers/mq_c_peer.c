/*
 * mq_c_peer: a plain C program that works on a named POSIX message queue
 * with the C library's own mq_* calls, for tests/test_message_queue.py.
 * Messages travel as hex, so NULs and any bytes survive the command line.
 *
 *     mq_c_peer create NAME MAXMSG MSGSIZE  mq_open(O_CREAT | O_EXCL | O_RDWR, 0600);
 *                                           prints "created"
 *     mq_c_peer send NAME PRIORITY HEX      mq_send; prints "sent"
 *     mq_c_peer receive NAME TIMEOUT        mq_timedreceive for at most TIMEOUT seconds
 *                                           (decimal); prints "PRIORITY HEX" or "timeout"
 *     mq_c_peer attr NAME                   mq_getattr; prints "MAXMSG MSGSIZE CURMSGS"
 *
 * Every command but create opens an existing queue. On an error it prints
 * "mq_c_peer: <call>(NAME): <strerror> (errno N)" to stderr and exits with
 * status 1.
 *
 * Build: gcc -std=c11 -Wall -Wextra -Werror -o mq_c_peer mq_c_peer.c -lrt
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(const char *call, const char *name)
{
    int err = errno;
    fprintf(stderr, "mq_c_peer: %s(%s): %s (errno %d)\n", call, name, strerror(err), err);
    return 1;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: mq_c_peer create NAME MAXMSG MSGSIZE | send NAME PRIORITY HEX"
            " | receive NAME TIMEOUT | attr NAME\n");
    return 1;
}

static int parse_long(const char *text, long *out)
{
    char *end = NULL;
    errno = 0;
    *out = strtol(text, &end, 10);
    return errno == 0 && end != text && *end == '\0' && *out >= 0;
}

/* Decodes HEX into a new buffer; returns its length, or -1. */
static long from_hex(const char *hex, char **out)
{
    size_t digits = strlen(hex);
    if (digits % 2 != 0)
        return -1;
    *out = malloc(digits / 2 + 1);
    if (*out == NULL)
        return -1;
    for (size_t i = 0; i < digits / 2; i++) {
        unsigned int byte = 0;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
            return -1;
        (*out)[i] = (char)byte;
    }
    return (long)(digits / 2);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const char *command = argv[1];
    const char *name = argv[2];

    if (strcmp(command, "create") == 0 && argc == 5) {
        struct mq_attr attr = {0};
        if (!parse_long(argv[3], &attr.mq_maxmsg) || !parse_long(argv[4], &attr.mq_msgsize))
            return usage();
        mqd_t mq = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
        if (mq == (mqd_t)-1)
            return fail("mq_open", name);
        puts("created");
        return mq_close(mq) == 0 ? 0 : fail("mq_close", name);
    }

    mqd_t mq = mq_open(name, O_RDWR);
    if (mq == (mqd_t)-1)
        return fail("mq_open", name);

    if (strcmp(command, "send") == 0 && argc == 5) {
        long priority = 0;
        char *message = NULL;
        long length = from_hex(argv[4], &message);
        if (!parse_long(argv[3], &priority) || length < 0)
            return usage();
        if (mq_send(mq, message, (size_t)length, (unsigned int)priority) != 0)
            return fail("mq_send", name);
        free(message);
        puts("sent");
    } else if (strcmp(command, "receive") == 0 && argc == 4) {
        struct mq_attr attr;
        if (mq_getattr(mq, &attr) != 0)
            return fail("mq_getattr", name);
        double timeout = strtod(argv[3], NULL);
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += (time_t)timeout;
        deadline.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec += 1;
            deadline.tv_nsec -= 1000000000L;
        }
        char *buffer = malloc((size_t)attr.mq_msgsize);
        if (buffer == NULL)
            return fail("malloc", name);
        unsigned int priority = 0;
        ssize_t length = mq_timedreceive(mq, buffer, (size_t)attr.mq_msgsize, &priority, &deadline);
        if (length < 0 && errno == ETIMEDOUT) {
            puts("timeout");
        } else if (length < 0) {
            return fail("mq_timedreceive", name);
        } else {
            printf("%u ", priority);
            for (ssize_t i = 0; i < length; i++)
                printf("%02x", (unsigned char)buffer[i]);
            putchar('\n');
        }
        free(buffer);
    } else if (strcmp(command, "attr") == 0 && argc == 3) {
        struct mq_attr attr;
        if (mq_getattr(mq, &attr) != 0)
            return fail("mq_getattr", name);
        printf("%ld %ld %ld\n", attr.mq_maxmsg, attr.mq_msgsize, attr.mq_curmsgs);
    } else {
        return usage();
    }
    return mq_close(mq) == 0 ? 0 : fail("mq_close", name);
}
