/* Minimal non-blocking epoll client, the C baseline of two benches:
 * benches/flood.sh (connect rate, against c1m flood) and benches/serve.sh
 * (idle connections held, against c1m serve and a C server).
 *
 * Per connection, the same work as c1m flood: a non-blocking connect
 * (optionally from source address SRC, with IP_BIND_ADDRESS_NO_PORT so each
 * 4-tuple has the whole ephemeral range), `Hello Server: client --> k\n`
 * written, the echo read and compared, the connection kept open. Up to
 * WINDOW connects in flight (all processes together); destination ports
 * cycle over BASE..BASE+NPORTS-1. PROCS processes share the connections
 * (the fd limit). A failed connection is counted, never fatal; every
 * process gives up after 180 s.
 *
 * usage: epoll_client HOST BASE NPORTS CONNECTIONS WINDOW PROCS [SRC|- [HOLD]]
 *
 * Prints `done verified=V of N failed=F ms=T: R/s` (T: the slowest
 * process's time from its first connect to its last echo, R = V / T). With
 * HOLD > 0 it then keeps every connection open until SIGTERM/SIGINT or HOLD
 * seconds. Exit status 0 when all N were verified, 1 otherwise. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GIVE_UP_S 180
#define MAX_REPORTED 5 /* failures printed per process; the rest are counted */

struct conn { long k; unsigned char st, rd; };  /* st: 1 connecting, 2 awaiting echo, 3 open */
struct result { double secs; long verified, failed; };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int msg(long k, char *b) { return sprintf(b, "Hello Server: client --> %ld\n", k); }

static long reported;
static void report(const char *what, int err) {
    if (reported++ < MAX_REPORTED) fprintf(stderr, "%s: %s\n", what, strerror(err));
}

/* Connections first..first+n-1 of one process; fills *res. */
static void run(struct result *res, const struct sockaddr_in *dst, const struct sockaddr_in *src,
                int base, int nports, long first, long n, int window, size_t maxfd) {
    long next = 0, verified = 0, failed = 0, inflight = 0;
    double t0 = now(), last = t0;
    int ep = epoll_create1(0);
    struct conn *cs = calloc(maxfd, sizeof *cs);
    if (ep < 0 || !cs) { report("epoll_create1/calloc", errno); failed = n; goto done; }
    struct sockaddr_in a = *dst;
    struct epoll_event evs[1024];
    char buf[4096], exp[64];
    while (verified + failed < n && now() < t0 + GIVE_UP_S) {
        while (inflight < window && next < n) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
            if (fd < 0) { report("socket", errno); failed += n - next; next = n; break; }
            long k = first + next++;
            if (src) {
                setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
                if (bind(fd, (const struct sockaddr *)src, sizeof *src)) { report("bind", errno); close(fd); failed++; continue; }
            }
            a.sin_port = htons(base + (int)(k % nports));
            if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
                report("connect", errno); close(fd); failed++; continue;
            }
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.fd = fd};
            if ((size_t)fd >= maxfd || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
                report("epoll_ctl", (size_t)fd >= maxfd ? EMFILE : errno); close(fd); failed++; continue;
            }
            cs[fd] = (struct conn){.k = k, .st = 1, .rd = 0};
            inflight++;
        }
        int m = epoll_wait(ep, evs, 1024, 100);
        for (int i = 0; i < m; i++) {
            int fd = evs[i].data.fd, bad = 0;
            struct conn *c = &cs[fd];
            if (c->st == 1 && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                int err = 0, len = msg(c->k, exp);
                socklen_t l = sizeof err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err) { report("connect", err); bad = 1; }
                else if (write(fd, exp, len) != len) { report("write", errno); bad = 1; }
                else c->st = 2;
            }
            if (!bad && c->st == 2 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
                int len = msg(c->k, exp);
                for (;;) {
                    ssize_t r = read(fd, buf, sizeof buf);
                    if (r < 0 && errno == EAGAIN) break;
                    if (r < 0) { report("read", errno); bad = 1; break; }
                    if (r == 0) { report("read", ECONNRESET); bad = 1; break; }
                    if (c->rd + r > len || memcmp(buf, exp + c->rd, r) != 0) { report("echo", EPROTO); bad = 1; break; }
                    c->rd += r;
                }
                if (!bad && c->rd == len) { c->st = 3; verified++; inflight--; last = now(); }
            }
            if (bad) { close(fd); c->st = 0; failed++; inflight--; }
        }
    }
done:
    res->secs = (verified ? last : now()) - t0;
    res->verified = verified;
    res->failed = n - verified; /* failed, or still pending when it gave up */
}

int main(int argc, char **argv) {
    if (argc < 7 || argc > 9) {
        fprintf(stderr, "usage: %s HOST BASE NPORTS CONNECTIONS WINDOW PROCS [SRC|- [HOLD]]\n", argv[0]);
        return 2;
    }
    int base = atoi(argv[2]), nports = atoi(argv[3]), window = atoi(argv[5]), procs = atoi(argv[6]);
    long total = atol(argv[4]);
    int hold = argc > 8 ? atoi(argv[8]) : 0;
    struct sockaddr_in dst = {.sin_family = AF_INET}, srcaddr = {.sin_family = AF_INET}, *src = NULL;
    if (nports < 1 || total < 1 || window < 1 || procs < 1 || inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
        fprintf(stderr, "bad arguments (HOST must be an IPv4 address; counts >= 1)\n");
        return 2;
    }
    if (argc > 7 && strcmp(argv[7], "-") != 0) {
        if (inet_pton(AF_INET, argv[7], &srcaddr.sin_addr) != 1) { fprintf(stderr, "SRC %s is not an IPv4 address\n", argv[7]); return 2; }
        src = &srcaddr;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);
    struct result *res = mmap(NULL, sizeof *res * procs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int ready[2];
    if (res == MAP_FAILED || pipe(ready)) { perror("mmap/pipe"); return 2; }
    int pwindow = (window + procs - 1) / procs;
    pid_t *pids = calloc(procs, sizeof *pids);
    if (!pids) { perror("calloc"); return 2; }
    for (int p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 2; }
        if (pid != 0) { pids[p] = pid; continue; }
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(ready[0]);
        long n = total / procs + (p < total % procs), first = p * (total / procs) + (p < total % procs ? p : total % procs);
        run(&res[p], &dst, src, base, nports, first, n, pwindow, rl.rlim_cur + 16);
        if (write(ready[1], "x", 1) != 1) _exit(1);
        if (hold > 0) for (;;) pause(); /* held until the parent ends (PDEATHSIG) */
        _exit(0);
    }
    close(ready[1]);
    char c;
    for (int got = 0; got < procs && read(ready[0], &c, 1) == 1; got++) {}
    double worst = 0;
    long v = 0, f = 0;
    for (int p = 0; p < procs; p++) {
        if (res[p].secs > worst) worst = res[p].secs;
        v += res[p].verified; f += res[p].failed;
    }
    printf("done verified=%ld of %ld failed=%ld ms=%.0f: %.0f/s\n", v, total, f, worst * 1000, worst > 0 ? v / worst : 0);
    fflush(stdout);
    if (hold > 0) {
        sigset_t s;
        sigemptyset(&s); sigaddset(&s, SIGTERM); sigaddset(&s, SIGINT); sigaddset(&s, SIGALRM);
        sigprocmask(SIG_BLOCK, &s, NULL);
        alarm(hold);
        int sig;
        sigwait(&s, &sig);
        for (int p = 0; p < procs; p++) kill(pids[p], SIGKILL);
    }
    while (wait(NULL) > 0) {}
    return v == total ? 0 : 1;
}
