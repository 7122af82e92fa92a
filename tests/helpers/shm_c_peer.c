/*
 * shm_c_peer: a plain C program that maps a POSIX shared memory segment
 * with the C library's own shm_open/ftruncate/mmap, for
 * tests/test_shared_memory.py. It speaks the line protocol of shm_peer.py:
 *
 *     shm_c_peer open NAME           shm_open(NAME, O_RDWR), map it all
 *     shm_c_peer create NAME SIZE    shm_open(NAME, O_CREAT | O_EXCL | O_RDWR, 0600),
 *                                    ftruncate(SIZE), map it all
 *
 *     (on start)       -> "ready NAME SIZE"
 *     get OFFSET LEN   -> "data HEX"
 *     put OFFSET HEX   -> "ok"
 *     size             -> "size N"        (fstat: the segment's current size)
 *     quit             -> "bye", then exit 0
 *
 * The mapping is made once, at start: what the peers exchange goes through
 * shared memory, not through reopening the segment. On an error it prints
 * "shm_c_peer: <call>(NAME): <strerror> (errno N)" to stderr and exits 1.
 *
 * Build: gcc -std=c11 -Wall -Wextra -Werror -o shm_c_peer shm_c_peer.c -lrt
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *call, const char *name)
{
    int err = errno;
    fprintf(stderr, "shm_c_peer: %s(%s): %s (errno %d)\n", call, name, strerror(err), err);
    return 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: shm_c_peer open NAME | create NAME SIZE\n");
    return 2;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A request must stay inside the mapping; anything else is a test bug. */
static int in_bounds(unsigned long offset, unsigned long length, size_t size)
{
    return offset <= size && length <= size - offset;
}

int main(int argc, char **argv)
{
    if (argc < 3) return usage();
    const char *command = argv[1], *name = argv[2];
    int fd;
    if (strcmp(command, "open") == 0 && argc == 3) {
        fd = shm_open(name, O_RDWR, 0);
        if (fd == -1) return fail("shm_open", name);
    } else if (strcmp(command, "create") == 0 && argc == 4) {
        fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
        if (fd == -1) return fail("shm_open", name);
        if (ftruncate(fd, (off_t)strtoll(argv[3], NULL, 10)) == -1) return fail("ftruncate", name);
    } else {
        return usage();
    }

    struct stat st;
    if (fstat(fd, &st) == -1) return fail("fstat", name);
    size_t size = (size_t)st.st_size;
    unsigned char *data = NULL;
    if (size > 0) {
        data = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (data == MAP_FAILED) return fail("mmap", name);
    }
    printf("ready %s %zu\n", name, size);
    fflush(stdout);

    char line[8192];
    while (fgets(line, sizeof line, stdin) != NULL) {
        unsigned long offset, length;
        char hex[4096];
        if (sscanf(line, "get %lu %lu", &offset, &length) == 2) {
            if (!in_bounds(offset, length, size)) return usage();
            printf("data ");
            for (unsigned long i = 0; i < length; i++) printf("%02x", data[offset + i]);
            printf("\n");
        } else if (sscanf(line, "put %lu %4095s", &offset, hex) == 2) {
            size_t n = strlen(hex) / 2;
            if (!in_bounds(offset, n, size)) return usage();
            for (size_t i = 0; i < n; i++) {
                int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
                if (hi < 0 || lo < 0) return usage();
                data[offset + i] = (unsigned char)(hi * 16 + lo);
            }
            printf("ok\n");
        } else if (strncmp(line, "size", 4) == 0) {
            if (fstat(fd, &st) == -1) return fail("fstat", name);
            printf("size %lld\n", (long long)st.st_size);
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        } else {
            return usage();
        }
        fflush(stdout);
    }
    if (data != NULL && munmap(data, size) == -1) return fail("munmap", name);
    close(fd);
    printf("bye\n");
    return 0;
}
