/* Minimal multi-port epoll echo server for benches/flood.sh.
 * usage: echo_server BASE_PORT NPORTS NPROCS
 * Forks NPROCS processes; each listens on BASE_PORT..BASE_PORT+NPORTS-1 with
 * SO_REUSEPORT (the kernel spreads connections between them, so no process
 * nears the 20,000 fd limit), accepts everything, echoes every byte back.
 * Binds 127.0.0.1 only. Ends on SIGTERM/SIGINT (children die with it). */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXL 1024
static int lfd_is[65536];

static void serve(int base, int n) {
    int ep = epoll_create1(0);
    if (ep < 0) { perror("epoll_create1"); exit(2); }
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(base + i)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); exit(2); }
        if (listen(fd, 65535) < 0) { perror("listen"); exit(2); }
        lfd_is[fd] = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    struct epoll_event evs[MAXL];
    char buf[4096];
    for (;;) {
        int k = epoll_wait(ep, evs, MAXL, -1);
        if (k < 0) { if (errno == EINTR) continue; perror("epoll_wait"); exit(2); }
        for (int i = 0; i < k; i++) {
            int fd = evs[i].data.fd;
            if (fd < 65536 && lfd_is[fd]) {
                for (;;) {
                    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK);
                    if (c < 0) {
                        if (errno == EMFILE || errno == ENFILE) perror("accept4");
                        break;
                    }
                    struct epoll_event ev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                }
                continue;
            }
            for (;;) {
                ssize_t r = read(fd, buf, sizeof buf);
                if (r > 0) { if (write(fd, buf, r) < 0) { close(fd); break; } continue; }
                if (r == 0 || errno != EAGAIN) close(fd);
                break;
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s BASE_PORT NPORTS NPROCS\n", argv[0]); return 2; }
    int base = atoi(argv[1]), n = atoi(argv[2]), procs = atoi(argv[3]);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);
    for (int p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid == 0) { prctl(PR_SET_PDEATHSIG, SIGKILL); serve(base, n); }
    }
    fprintf(stderr, "echo_server: %d processes on 127.0.0.1:%d..%d\n", procs, base, base + n - 1);
    while (wait(NULL) > 0) {}
    return 0;
}
