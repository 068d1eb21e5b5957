/* Minimal non-blocking epoll client for benches/flood.sh: the baseline
 * c1m flood is compared with. Same work per connection as flood: a
 * non-blocking connect, `Hello Server: client --> k\n` written, the echo
 * read and compared, connection kept open; up to WINDOW connects in flight
 * per process; destination ports cycle over BASE..BASE+NPORTS-1.
 * usage: epoll_client HOST BASE_PORT NPORTS CONNECTIONS WINDOW PROCS
 * Forks PROCS processes with CONNECTIONS/PROCS each (fd limit). Prints
 * `verified V of N in S s: R/s` (S = the slowest process's time). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct conn { long k; unsigned char st, rd; };  /* st: 1 connecting, 2 awaiting echo, 3 open */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int msg(long k, char *b) { return sprintf(b, "Hello Server: client --> %ld\n", k); }

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: %s HOST BASE_PORT NPORTS CONNECTIONS WINDOW PROCS\n", argv[0]); return 2; }
    const char *host = argv[1];
    int base = atoi(argv[2]), nports = atoi(argv[3]);
    long total = atol(argv[4]);
    int window = atoi(argv[5]), procs = atoi(argv[6]);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);
    double *res = mmap(NULL, sizeof(double) * 2 * procs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int pwindow = (window + procs - 1) / procs;
    for (int p = 0; p < procs; p++) {
        if (fork() != 0) continue;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        long n = total / procs + (p < total % procs), first = p * (total / procs) + (p < total % procs ? p : total % procs);
        int ep = epoll_create1(0);
        struct conn *cs = calloc(rl.rlim_max + 16, sizeof *cs);
        struct epoll_event evs[1024];
        char buf[4096], exp[64];
        long next = 0, verified = 0, inflight = 0;
        double t0 = now();
        struct sockaddr_in a = {.sin_family = AF_INET};
        inet_pton(AF_INET, host, &a.sin_addr);
        while (verified < n) {
            while (inflight < pwindow && next < n) {
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
                if (fd < 0) { perror("socket"); goto done; }
                long k = first + next;
                a.sin_port = htons(base + (int)(k % nports));
                if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) { perror("connect"); close(fd); goto done; }
                cs[fd].k = k; cs[fd].st = 1; cs[fd].rd = 0;
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.fd = fd};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                next++; inflight++;
            }
            int m = epoll_wait(ep, evs, 1024, 1000);
            for (int i = 0; i < m; i++) {
                int fd = evs[i].data.fd;
                struct conn *c = &cs[fd];
                if (c->st == 1 && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                    int err = 0; socklen_t l = sizeof err;
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
                    if (err) { fprintf(stderr, "connect: %s\n", strerror(err)); goto done; }
                    int len = msg(c->k, exp);
                    if (write(fd, exp, len) != len) { perror("write"); goto done; }
                    c->st = 2;
                }
                if (c->st == 2 && (evs[i].events & EPOLLIN)) {
                    int len = msg(c->k, exp);
                    for (;;) {
                        ssize_t r = read(fd, buf, sizeof buf);
                        if (r <= 0) break;
                        if (c->rd + r > len || memcmp(buf, exp + c->rd, r) != 0) { fprintf(stderr, "echo mismatch\n"); goto done; }
                        c->rd += r;
                    }
                    if (c->rd == len) { c->st = 3; verified++; inflight--; }
                }
            }
        }
    done:
        res[2 * p] = now() - t0;
        res[2 * p + 1] = verified;
        _exit(0);
    }
    while (wait(NULL) > 0) {}
    double worst = 0, v = 0;
    for (int p = 0; p < procs; p++) { if (res[2 * p] > worst) worst = res[2 * p]; v += res[2 * p + 1]; }
    printf("verified %.0f of %ld in %.3f s: %.0f/s\n", v, total, worst, v / worst);
    return v == total ? 0 : 1;
}
