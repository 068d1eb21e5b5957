/* Bench helper (not a test): keep the host's free memory backed by the
 * hypervisor for the length of a benchmark, so that two runs compared with
 * each other pay the same for the memory they touch.
 *
 * Why: this VM reports free memory back to its host (virtio-balloon free
 * page reporting, page_reporting_order in /sys/module/page_reporting): any
 * free 2^order-page block is handed back within seconds, and the next write
 * to it takes a hypervisor fault (measured here: about 8 us a page instead
 * of 1.3 us). A million loopback connections write ~6 GB of fresh slab, so
 * whichever run happens to get reported blocks pays seconds more, and which
 * one does depends on what the run before left fragmented.
 *
 * What it does: takes the free memory (MemFree minus a margin), writes every
 * page of it (so the host backs it), finds each page's frame in
 * /proc/self/pagemap, keeps one page in every reporting block and gives the
 * rest back (MADV_DONTNEED). A block with one page held can never be free
 * as a whole, so it is never reported: the ~511 pages freed around each
 * kept one stay backed, and any run allocates them at bare-metal cost. It
 * holds 1/512 of memory (about 45 MiB for 24 GiB).
 *
 * On SIGUSR1 it does another pass (memory freed since, e.g. by
 * drop_caches, joins in); each pass ends with a line "pass N ..." on stdout.
 * It ends on SIGTERM; what it held is freed then.
 *
 *   pin_memory [MARGIN_MIB [ORDER]]   (defaults: 1024, the module's order)
 *
 * Needs root (pagemap frame numbers).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t again, stop;
static void on_usr1(int s) { (void)s; again = 1; }
static void on_term(int s) { (void)s; stop = 1; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static long meminfo_kib(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') { v = atol(line + n + 1); break; }
    fclose(f);
    return v;
}

static uint8_t *pinned;      /* one bit per reporting block, by frame number */
static size_t pinned_bytes;  /* size of that bitmap */
static long held;            /* pages kept, all passes */

static int pass(long margin_kib, int order, int n) {
    double t0 = now();
    long free_kib = meminfo_kib("MemFree");
    long take_kib = free_kib - margin_kib;
    if (take_kib <= 0) { printf("pass %d: MemFree %ld KiB, under the margin: nothing taken\n", n, free_kib); return 0; }
    size_t page = 4096, len = (size_t)take_kib * 1024 / page * page, pages = len / page;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { fprintf(stderr, "pin_memory: mmap %zu bytes: %s\n", len, strerror(errno)); return -1; }
    madvise(p, len, MADV_NOHUGEPAGE);   /* frames one by one: a kept page must not pin a huge page */
    for (size_t i = 0; i < pages && !stop; i++) p[i * page] = 1;
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) { fprintf(stderr, "pin_memory: /proc/self/pagemap: %s\n", strerror(errno)); return -1; }
    uint64_t buf[4096];
    long kept = 0, given = 0;
    size_t run_start = (size_t)-1;  /* first page of the run of pages to give back */
    for (size_t i = 0; i < pages; i += 4096) {
        size_t want = pages - i < 4096 ? pages - i : 4096;
        off_t off = (off_t)(((uintptr_t)p / page + i) * sizeof(uint64_t));
        if (pread(fd, buf, want * sizeof(uint64_t), off) != (ssize_t)(want * sizeof(uint64_t))) {
            fprintf(stderr, "pin_memory: pagemap read: %s\n", strerror(errno)); close(fd); return -1;
        }
        for (size_t j = 0; j < want; j++) {
            size_t k = i + j;
            int keep = 0;
            if (buf[j] >> 63) {  /* present */
                uint64_t block = (buf[j] & ((1ULL << 55) - 1)) >> order;
                size_t byte = block / 8;
                if (byte >= pinned_bytes) {
                    size_t nb = (byte + 1) * 2;
                    uint8_t *q = realloc(pinned, nb);
                    if (!q) { fprintf(stderr, "pin_memory: out of memory for the bitmap\n"); close(fd); return -1; }
                    memset(q + pinned_bytes, 0, nb - pinned_bytes);
                    pinned = q; pinned_bytes = nb;
                }
                if (!(pinned[byte] & (1 << (block % 8)))) { pinned[byte] |= 1 << (block % 8); keep = 1; }
            }
            if (keep) {
                if (run_start != (size_t)-1) { madvise(p + run_start * page, (k - run_start) * page, MADV_DONTNEED); run_start = (size_t)-1; }
                kept++;
            } else {
                if (run_start == (size_t)-1) run_start = k;
                given++;
            }
        }
    }
    if (run_start != (size_t)-1) madvise(p + run_start * page, (pages - run_start) * page, MADV_DONTNEED);
    close(fd);
    held += kept;
    printf("pass %d: took %ld MiB, kept %ld pages in new blocks (%ld held, %.0f MiB), gave %ld back, %.1f s\n",
           n, take_kib / 1024, kept, held, held * 4096.0 / 1048576, given, now() - t0);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    long margin_mib = argc > 1 ? atol(argv[1]) : 1024;
    int order = argc > 2 ? atoi(argv[2]) : -1;
    if (order < 0) {
        FILE *f = fopen("/sys/module/page_reporting/parameters/page_reporting_order", "r");
        if (!f || fscanf(f, "%d", &order) != 1) order = 9;
        if (f) fclose(f);
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1; sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_term; sigaction(SIGTERM, &sa, NULL); sigaction(SIGINT, &sa, NULL);
    printf("pin_memory: reporting order %d, margin %ld MiB\n", order, margin_mib);
    int n = 1;
    if (pass(margin_mib * 1024, order, n++) < 0) return 1;
    while (!stop) {
        if (!again) { usleep(20000); continue; }
        if (!stop) { again = 0; if (pass(margin_mib * 1024, order, n++) < 0) return 1; }
    }
    return 0;
}
