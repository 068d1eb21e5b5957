/* Bench client for benches/serve.sh: opens COUNT connections to
 * DST:FIRST_PORT.. (cycling over NPORTS ports) from source address SRC
 * (IP_BIND_ADDRESS_NO_PORT, so each 4-tuple gets its own port range),
 * non-blocking with at most 1000 connects in flight, sends "ping\n" on each
 * and checks the echo. Prints "done verified=V failed=F ms=T" (T: first
 * connect to last echo) and then holds every connection open, idle, until
 * SIGTERM or HOLD seconds pass.
 * usage: idle_client DST FIRST_PORT NPORTS COUNT SRC HOLD */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: %s DST FIRST_PORT NPORTS COUNT SRC HOLD\n", argv[0]); return 2; }
    int first = atoi(argv[2]), nports = atoi(argv[3]), hold = atoi(argv[6]);
    long count = atol(argv[4]), started = 0, verified = 0, failed = 0, inflight = 0;
    struct sockaddr_in dst = {.sin_family = AF_INET}, src = {.sin_family = AF_INET};
    inet_pton(AF_INET, argv[1], &dst.sin_addr);
    inet_pton(AF_INET, argv[5], &src.sin_addr);
    int ep = epoll_create1(0);
    struct epoll_event ev, evs[1024];
    long t0 = now_ms(), deadline = t0 + 180000;
    signal(SIGPIPE, SIG_IGN);
    while (verified + failed < count && now_ms() < deadline) {
        while (started < count && inflight < 1000) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
            if (fd < 0) { perror("socket"); failed += count - started; started = count; break; }
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            if (bind(fd, (struct sockaddr *)&src, sizeof src)) { perror("bind"); close(fd); failed++; started++; continue; }
            dst.sin_port = htons(first + started % nports);
            started++;
            if (connect(fd, (struct sockaddr *)&dst, sizeof dst) && errno != EINPROGRESS) {
                fprintf(stderr, "connect: %s\n", strerror(errno)); close(fd); failed++; continue;
            }
            ev.events = EPOLLOUT; ev.data.fd = fd;
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            inflight++;
        }
        int k = epoll_wait(ep, evs, 1024, 100);
        for (int e = 0; e < k; e++) {
            int fd = evs[e].data.fd, err = 0;
            socklen_t len = sizeof err;
            if (evs[e].events & EPOLLOUT) {
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err || write(fd, "ping\n", 5) != 5) { failed++; inflight--; close(fd); continue; }
                ev.events = EPOLLIN; ev.data.fd = fd;
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
            } else {
                char buf[8];
                ssize_t r = read(fd, buf, sizeof buf);
                if (r < 0 && errno == EAGAIN) continue;
                inflight--;
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                if (r == 5 && memcmp(buf, "ping\n", 5) == 0) verified++;
                else { failed++; close(fd); }
            }
        }
    }
    printf("done verified=%ld failed=%ld ms=%ld\n", verified, failed + (count - verified - failed), now_ms() - t0);
    fflush(stdout);
    sigset_t s; sigemptyset(&s); sigaddset(&s, SIGTERM); sigaddset(&s, SIGINT); sigaddset(&s, SIGALRM);
    sigprocmask(SIG_BLOCK, &s, NULL);
    alarm(hold);
    int sig; sigwait(&s, &sig);
    return 0;
}
