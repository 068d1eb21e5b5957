/* Minimal epoll echo server for benches/serve.sh: the baseline c1m serve is
 * compared with. Same layout as c1m serve: the parent opens NPORTS
 * consecutive ports (backlog = somaxconn), forks PROCS children that inherit
 * the listeners and poll all of them (EPOLLEXCLUSIVE), each accepting up to
 * CAP connections. Nothing is kept per connection in user space: the fd is
 * the state. Echo is best effort (a short write drops the rest): enough for
 * idle connections and a one-line echo check.
 * usage: echo_server BIND_IP FIRST_PORT NPORTS PROCS CAP */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define LBASE 1000000000u

static void serve(int *ls, int n, long cap) {
    int ep = epoll_create1(0), open = 0, on = 1;
    struct epoll_event ev, evs[256];
    char buf[16384];
    for (int i = 0; i < n; i++) {
        ev.events = EPOLLIN | EPOLLEXCLUSIVE; ev.data.u64 = LBASE + i;
        epoll_ctl(ep, EPOLL_CTL_ADD, ls[i], &ev);
    }
    for (;;) {
        int k = epoll_wait(ep, evs, 256, 50);
        for (int e = 0; e < k; e++) {
            unsigned long long t = evs[e].data.u64;
            if (t >= LBASE) {
                int fd;
                while (open < cap && (fd = accept4(ls[t - LBASE], NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    ev.events = EPOLLIN; ev.data.u64 = fd;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                    open++;
                }
                if (open >= cap && on) { /* full: let the other processes take them */
                    for (int i = 0; i < n; i++) epoll_ctl(ep, EPOLL_CTL_DEL, ls[i], NULL);
                    on = 0;
                }
            } else {
                ssize_t r = read((int)t, buf, sizeof buf);
                if (r > 0) { if (write((int)t, buf, r) < 0) {} }
                else if (r == 0 || errno != EAGAIN) { close((int)t); open--; }
            }
        }
        if (!on && open < cap) {
            for (int i = 0; i < n; i++) {
                ev.events = EPOLLIN | EPOLLEXCLUSIVE; ev.data.u64 = LBASE + i;
                epoll_ctl(ep, EPOLL_CTL_ADD, ls[i], &ev);
            }
            on = 1;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: %s BIND FIRST_PORT NPORTS PROCS CAP\n", argv[0]); return 2; }
    int first = atoi(argv[2]), n = atoi(argv[3]), procs = atoi(argv[4]);
    long cap = atol(argv[5]);
    int backlog = 4096, ls[1024];
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
    if (f) { if (fscanf(f, "%d", &backlog) != 1) backlog = 4096; fclose(f); }
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < n; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(first + i)};
        int one = 1;
        inet_pton(AF_INET, argv[1], &a.sin_addr);
        ls[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        setsockopt(ls[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(ls[i], (struct sockaddr *)&a, sizeof a) || listen(ls[i], backlog)) { perror("bind/listen"); return 1; }
    }
    pid_t kids[1024];
    for (int p = 0; p < procs && p < 1024; p++)
        if ((kids[p] = fork()) == 0) { prctl(PR_SET_PDEATHSIG, SIGKILL); serve(ls, n, cap); }
    printf("listening on %s:%d-%d (%d ports, %d workers)\n", argv[1], first, first + n - 1, n, procs);
    fflush(stdout);
    sigset_t s; sigemptyset(&s); sigaddset(&s, SIGTERM); sigaddset(&s, SIGINT);
    sigprocmask(SIG_BLOCK, &s, NULL);
    int sig; sigwait(&s, &sig);
    for (int p = 0; p < procs && p < 1024; p++) kill(kids[p], SIGKILL);
    while (wait(NULL) > 0) {}
    return 0;
}
