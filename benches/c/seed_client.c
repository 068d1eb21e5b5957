/* The seed's client loop, kept for the before/after figure of
 * benches/flood.sh: one blocking connect() at a time to BASE+index%NPORTS,
 * the line sent, then usleep(500) as the original did (its bugs left out:
 * no reads on the wrong descriptor, no cap). One process, like the seed.
 * usage: seed_client HOST BASE_PORT NPORTS CONNECTIONS
 * Prints `connected N in S s: R/s`. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s HOST BASE_PORT NPORTS CONNECTIONS\n", argv[0]); return 2; }
    int base = atoi(argv[2]), nports = atoi(argv[3]);
    long n = atol(argv[4]);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    char b[64];
    double t0 = now();
    long i;
    for (i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) { perror("socket"); break; }
        a.sin_port = htons(base + (int)(i % nports));
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); break; }
        int len = sprintf(b, "Hello Server: client --> %ld\n", i);
        if (send(fd, b, len, 0) != len) { perror("send"); break; }
        usleep(500);
    }
    double t = now() - t0;
    printf("connected %ld in %.3f s: %.0f/s\n", i, t, i / t);
    return i == n ? 0 : 1;
}
