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
 * usage: epoll_client HOST BASE NPORTS CONNECTIONS WINDOW PROCS [SRC|- [HOLD [MSG_MS]]]
 *
 * Prints `done verified=V of N failed=F ms=T: R/s` (T: the slowest
 * process's time from its first connect to its last echo, R = V / T). With
 * HOLD > 0 it then keeps every connection open until SIGTERM/SIGINT or HOLD
 * seconds. Exit status 0 when all N were verified, 1 otherwise.
 *
 * Traffic (benches/traffic.sh): with MSG_MS given, the HOLD seconds are a
 * traffic phase that all processes start together once every one is done
 * connecting. Every open connection sends its line again and checks the
 * echo byte by byte, one line in flight per connection: every MSG_MS
 * milliseconds (paced, spread evenly over the interval), or, with MSG_MS 0,
 * as soon as the previous echo is back (saturating). Then it prints
 * `traffic sent=S answered=A bad=B lost=L bytes=E secs=T p50_us= p99_us=
 * p999_us=` (bytes: echoed bytes received; lost: sent, not answered by the
 * end; RTT from a log histogram, 1/64 relative precision). A SRC ending in
 * `+` (127.0.1.1+) gives process p the address SRC + p, so that many
 * processes get the whole ephemeral port range each. */
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
#define HBUCKETS (64 * 64)
struct result {
    double secs; long verified, failed;
    long sent, answered, bad, bytes; double tsecs; unsigned hist[HBUCKETS];
};

/* log histogram of microseconds: 64 sub-buckets per power of two */
static int hbucket(unsigned long us) {
    if (us < 64) return (int)us;
    int e = 63 - __builtin_clzl(us); /* >= 6 */
    int b = (e - 5) * 64 + (int)((us >> (e - 6)) & 63);
    return b < HBUCKETS ? b : HBUCKETS - 1;
}
static unsigned long hvalue(int b) {
    if (b < 64) return (unsigned long)b;
    int e = b / 64 + 5;
    return ((unsigned long)(64 + b % 64)) << (e - 6);
}

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

static void traffic(struct result *res, int ep, struct conn *cs, size_t maxfd, int hold, int msg_ms, int go);

/* Connections first..first+n-1 of one process; fills *res. With msg_ms >= 0,
 * tells the parent it is done (ready), waits for `go` and runs the traffic
 * phase. */
static void run(struct result *res, const struct sockaddr_in *dst, const struct sockaddr_in *src,
                int base, int nports, long first, long n, int window, size_t maxfd,
                int hold, int msg_ms, int ready, int go) {
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
    if (write(ready, "x", 1) != 1) _exit(1);
    if (msg_ms >= 0 && ep >= 0 && cs) traffic(res, ep, cs, maxfd, hold, msg_ms, go);
}

/* The traffic phase: HOLD seconds of lines on every open connection (st 3). */
static void traffic(struct result *res, int ep, struct conn *cs, size_t maxfd, int hold, int msg_ms, int go) {
    char c, buf[4096], exp[64];
    if (read(go, &c, 1) != 1) return;
    double *sent_at = calloc(maxfd, sizeof *sent_at);
    int *open = malloc(maxfd * sizeof *open);
    long nopen = 0, cursor = 0, out = 0; /* out: lines sent, not yet answered */
    if (!sent_at || !open) { report("calloc", errno); return; }
    for (size_t fd = 0; fd < maxfd; fd++) if (cs[fd].st == 3) open[nopen++] = (int)fd;
    struct epoll_event evs[1024];
    double t0 = now(), end = t0 + hold, round = t0;
    /* send for HOLD seconds, then up to 2 s more for the echoes still out */
    while (now() < end || (out > 0 && now() < end + 2)) {
        double t = now();
        long due = t < end ? nopen : cursor; /* saturating: every idle connection */
        if (msg_ms > 0 && t < end) {
            double frac = (t - round) / (msg_ms / 1000.0);
            due = frac >= 1 ? nopen : (long)(frac * nopen);
        }
        for (; cursor < due; cursor++) {
            int fd = open[cursor];
            struct conn *k = &cs[fd];
            if (k->st != 3) continue; /* closed, or its last line is still out */
            int len = msg(k->k, exp);
            if (write(fd, exp, len) != len) { report("write", errno); k->st = 0; close(fd); continue; }
            k->st = 4; k->rd = 0; sent_at[fd] = t; res->sent++; out++;
        }
        if (msg_ms > 0 && t - round >= msg_ms / 1000.0) { round += msg_ms / 1000.0; cursor = 0; }
        else if (msg_ms == 0 && cursor >= nopen && t < end) cursor = 0;
        int m = epoll_wait(ep, evs, 1024, msg_ms > 0 ? 1 : 0);
        double tr = now();
        for (int i = 0; i < m; i++) {
            int fd = evs[i].data.fd;
            struct conn *k = &cs[fd];
            if (k->st != 4 || !(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            int len = msg(k->k, exp);
            for (;;) {
                ssize_t r = read(fd, buf, sizeof buf);
                if (r < 0 && errno == EAGAIN) break;
                if (r <= 0) { report("read", r == 0 ? ECONNRESET : errno); k->st = 0; out--; close(fd); break; }
                res->bytes += r;
                if (k->rd + r > len || memcmp(buf, exp + k->rd, r) != 0) { res->bad++; k->st = 3; out--; break; }
                k->rd += r;
                if (k->rd == len) {
                    unsigned long us = (unsigned long)((tr - sent_at[fd]) * 1e6);
                    res->hist[hbucket(us ? us : 1)]++;
                    res->answered++; k->st = 3; out--;
                    break;
                }
            }
        }
    }
    res->tsecs = end - t0;
}

int main(int argc, char **argv) {
    if (argc < 7 || argc > 10) {
        fprintf(stderr, "usage: %s HOST BASE NPORTS CONNECTIONS WINDOW PROCS [SRC|- [HOLD [MSG_MS]]]\n", argv[0]);
        return 2;
    }
    int base = atoi(argv[2]), nports = atoi(argv[3]), window = atoi(argv[5]), procs = atoi(argv[6]);
    long total = atol(argv[4]);
    int hold = argc > 8 ? atoi(argv[8]) : 0;
    int msg_ms = argc > 9 ? atoi(argv[9]) : -1; /* -1: no traffic phase */
    struct sockaddr_in dst = {.sin_family = AF_INET}, srcaddr = {.sin_family = AF_INET}, *src = NULL;
    if (nports < 1 || total < 1 || window < 1 || procs < 1 || inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
        fprintf(stderr, "bad arguments (HOST must be an IPv4 address; counts >= 1)\n");
        return 2;
    }
    int src_step = 0;
    if (argc > 7 && strcmp(argv[7], "-") != 0) {
        char sa[64];
        snprintf(sa, sizeof sa, "%s", argv[7]);
        size_t sl = strlen(sa);
        if (sl > 0 && sa[sl - 1] == '+') { sa[sl - 1] = 0; src_step = 1; }
        if (inet_pton(AF_INET, sa, &srcaddr.sin_addr) != 1) { fprintf(stderr, "SRC %s is not an IPv4 address\n", argv[7]); return 2; }
        src = &srcaddr;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);
    struct result *res = mmap(NULL, sizeof *res * procs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int ready[2], go[2];
    if (res == MAP_FAILED || pipe(ready) || pipe(go)) { perror("mmap/pipe"); return 2; }
    memset(res, 0, sizeof *res * procs);
    int pwindow = (window + procs - 1) / procs;
    pid_t *pids = calloc(procs, sizeof *pids);
    if (!pids) { perror("calloc"); return 2; }
    for (int p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 2; }
        if (pid != 0) { pids[p] = pid; continue; }
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(ready[0]);
        close(go[1]);
        long n = total / procs + (p < total % procs), first = p * (total / procs) + (p < total % procs ? p : total % procs);
        if (src && src_step) srcaddr.sin_addr.s_addr = htonl(ntohl(srcaddr.sin_addr.s_addr) + (uint32_t)p);
        run(&res[p], &dst, src, base, nports, first, n, pwindow, rl.rlim_cur + 16, hold, msg_ms, ready[1], go[0]);
        if (msg_ms >= 0) _exit(0);
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
    if (msg_ms >= 0) { /* traffic: start every process together, then sum */
        for (int p = 0; p < procs; p++) if (write(go[1], "g", 1) != 1) { perror("write"); return 2; }
        while (wait(NULL) > 0) {}
        static unsigned long h[HBUCKETS];
        long s = 0, a = 0, b = 0, e = 0; double ts = 0;
        for (int p = 0; p < procs; p++) {
            s += res[p].sent; a += res[p].answered; b += res[p].bad; e += res[p].bytes;
            if (res[p].tsecs > ts) ts = res[p].tsecs;
            for (int i = 0; i < HBUCKETS; i++) h[i] += res[p].hist[i];
        }
        unsigned long q[3] = {0, 0, 0}; double qs[3] = {0.5, 0.99, 0.999}; unsigned long acc = 0;
        for (int j = 0, i = 0; i < HBUCKETS && j < 3; i++) {
            acc += h[i];
            while (j < 3 && a > 0 && acc >= (unsigned long)(qs[j] * a + 0.5)) q[j++] = hvalue(i);
        }
        printf("traffic sent=%ld answered=%ld bad=%ld lost=%ld bytes=%ld secs=%.3f p50_us=%lu p99_us=%lu p999_us=%lu\n",
               s, a, b, s - a - b, e, ts, q[0], q[1], q[2]);
        fflush(stdout);
        return v == total && b == 0 ? 0 : 1;
    }
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
