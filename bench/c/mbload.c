/* Load generator of the benchmarks: Modbus TCP (FC03/FC04) or HTTP/1.1 GET, one thread, epoll.
 *
 * Every connection has at most one request in flight (request -> wait for the whole answer ->
 * next), like a SCADA master: pymodbus mishandles pipelined requests (DESIGN §9), and a real
 * master does not pipeline either.
 *   closed mode: each connection sends its next request as soon as the answer is in
 *                (throughput at saturation);
 *   paced mode:  connection i is due at t0 + (k*N + i) / (N*rate), i.e. every connection polls
 *                at `rate` Hz, evenly staggered; a poll that finds its previous request still
 *                unanswered is counted as missed (the server cannot keep up).
 * Latency = send of the request -> last byte of the answer, CLOCK_MONOTONIC.
 * Targets file: one line per target, "PORT UNIT" (modbus) or "PORT PATH" (http); connection i
 * uses line i % lines (http connections then rotate through all paths).
 * Bounded: stops sending after warmup + duration, waits at most 2 s for answers in flight.
 * Prints one JSON object on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 100000
#define RXBUF 65536

typedef struct {
    int fd;
    int port;
    int unit;
    int busy;
    uint16_t tid;
    uint64_t sent_ns;
    size_t rx_len;
    int path_idx;
    char rx[RXBUF];
} conn_t;

static int g_http = 0, g_fc = 4, g_addr = 0, g_count = 10;
static int n_targets = 0;
static int t_port[MAX_TARGETS];
static int t_unit[MAX_TARGETS];
static char *t_path[MAX_TARGETS];
static uint32_t *samples;
static size_t n_samples = 0, max_samples = 4000000;
static uint64_t n_ok = 0, n_err = 0, n_missed = 0, n_sent = 0;
static uint64_t measure_from_ns, measure_to_ns;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "mbload: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int send_request(conn_t *c, int conns) {
    char buf[1024];
    size_t len;
    if (g_http) {
        const char *path = t_path[c->path_idx];
        c->path_idx = (c->path_idx + conns) % n_targets;
        len = (size_t)snprintf(buf, sizeof buf,
                               "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: */*\r\n\r\n",
                               path, c->port);
    } else {
        c->tid++;
        unsigned char *b = (unsigned char *)buf;
        b[0] = c->tid >> 8; b[1] = c->tid & 0xff;
        b[2] = 0; b[3] = 0;            /* protocol id */
        b[4] = 0; b[5] = 6;            /* length: unit + 5 PDU bytes */
        b[6] = (unsigned char)c->unit;
        b[7] = (unsigned char)g_fc;
        b[8] = g_addr >> 8; b[9] = g_addr & 0xff;
        b[10] = g_count >> 8; b[11] = g_count & 0xff;
        len = 12;
    }
    c->rx_len = 0;
    c->sent_ns = now_ns();
    ssize_t w = write(c->fd, buf, len);
    if (w != (ssize_t)len) return -1;
    c->busy = 1;
    n_sent++;
    return 0;
}

/* >0: complete answer of that many bytes (1 = ok, 2 = error answer); 0: need more; -1: bad */
static int answer_state(conn_t *c) {
    if (!g_http) {
        if (c->rx_len < 7) return 0;
        unsigned char *b = (unsigned char *)c->rx;
        size_t total = 6 + (size_t)((b[4] << 8) | b[5]);
        if (c->rx_len < total) return 0;
        if (c->rx_len > total) return -1; /* one request in flight: no more bytes expected */
        uint16_t tid = (uint16_t)((b[0] << 8) | b[1]);
        if (tid != c->tid) return -1;
        if (b[7] != g_fc || b[8] != 2 * g_count) return 2;
        return 1;
    }
    c->rx[c->rx_len < RXBUF ? c->rx_len : RXBUF - 1] = 0;
    char *end = strstr(c->rx, "\r\n\r\n");
    if (end == NULL) return c->rx_len >= RXBUF - 1 ? -1 : 0;
    size_t head = (size_t)(end - c->rx) + 4;
    long clen = -1;
    for (char *p = c->rx; p < end; p++) {
        if ((p == c->rx || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
            clen = strtol(p + 15, NULL, 10);
            break;
        }
    }
    if (clen < 0) return -1;
    if (c->rx_len < head + (size_t)clen) return 0;
    return strncmp(c->rx + 9, "200", 3) == 0 ? 1 : 2;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p) {
    if (n_samples == 0) return -1;
    size_t i = (size_t)(p / 100.0 * (double)(n_samples - 1) + 0.5);
    return samples[i] / 1000.0; /* us */
}

static int load_targets(const char *file) {
    FILE *f = fopen(file, "r");
    if (!f) die("targets file");
    char line[2048];
    while (fgets(line, sizeof line, f) && n_targets < MAX_TARGETS) {
        char rest[2000];
        int port;
        if (sscanf(line, "%d %1999s", &port, rest) != 2) continue;
        t_port[n_targets] = port;
        if (g_http) {
            t_path[n_targets] = strdup(rest);
            t_unit[n_targets] = 0;
        } else {
            t_unit[n_targets] = atoi(rest);
        }
        n_targets++;
    }
    fclose(f);
    return n_targets;
}

int main(int argc, char **argv) {
    int conns = 1, paced = 0;
    double duration = 1.0, warmup = 0.2, rate = 1.0;
    const char *targets = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "c:d:w:m:r:t:f:a:n:PM:")) != -1) {
        switch (opt) {
        case 'c': conns = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'm': paced = strcmp(optarg, "paced") == 0; break;
        case 'r': rate = atof(optarg); break;
        case 't': targets = optarg; break;
        case 'f': g_fc = atoi(optarg); break;
        case 'a': g_addr = atoi(optarg); break;
        case 'n': g_count = atoi(optarg); break;
        case 'P': g_http = 1; break;
        case 'M': max_samples = (size_t)atol(optarg); break;
        default:
            fprintf(stderr, "usage: mbload -t TARGETS [-c conns] [-d s] [-w s] [-m closed|paced] "
                            "[-r Hz] [-f fc] [-a addr] [-n count] [-P (http)]\n");
            return 2;
        }
    }
    if (!targets || load_targets(targets) == 0 || conns < 1 || duration <= 0 || rate <= 0) {
        fprintf(stderr, "mbload: need a targets file with lines, conns >= 1, duration > 0\n");
        return 2;
    }
    samples = malloc(max_samples * sizeof *samples);
    conn_t *cs = calloc((size_t)conns, sizeof *cs);
    if (!samples || !cs) die("malloc");
    int ep = epoll_create1(0);
    for (int i = 0; i < conns; i++) {
        conn_t *c = &cs[i];
        c->port = t_port[i % n_targets];
        c->unit = t_unit[i % n_targets];
        c->path_idx = i % n_targets;
        c->tid = (uint16_t)(i * 7919);
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    }
    int tfd = -1;
    uint64_t t0 = now_ns();
    measure_from_ns = t0 + (uint64_t)(warmup * 1e9);
    measure_to_ns = measure_from_ns + (uint64_t)(duration * 1e9);
    uint64_t slot = 0, slot_ns = (uint64_t)(1e9 / (rate * conns));
    if (slot_ns == 0) slot_ns = 1;
    if (paced) {
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0xffffffffu};
        epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
        struct itimerspec its = {0};
        its.it_value.tv_sec = (time_t)(t0 / 1000000000ull);
        its.it_value.tv_nsec = (long)(t0 % 1000000000ull) + 1;
        timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    } else {
        for (int i = 0; i < conns; i++)
            if (send_request(&cs[i], conns) < 0) die("write");
    }
    uint64_t stop_ns = measure_to_ns, hard_stop_ns = measure_to_ns + 2000000000ull;
    int in_flight = paced ? 0 : conns;
    struct epoll_event evs[256];
    int sending = 1;
    while (1) {
        uint64_t now = now_ns();
        if (now >= stop_ns) sending = 0;
        if (!sending && (in_flight == 0 || now >= hard_stop_ns)) break;
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            uint32_t id = evs[k].data.u32;
            if (id == 0xffffffffu) {
                uint64_t exp;
                if (read(tfd, &exp, sizeof exp) < 0) { /* spurious */ }
                now = now_ns();
                while (sending && t0 + slot * slot_ns <= now) {
                    conn_t *c = &cs[slot % (uint64_t)conns];
                    slot++;
                    if (c->busy) {
                        if (now >= measure_from_ns) n_missed++;
                        continue;
                    }
                    if (send_request(c, conns) < 0) die("write");
                    in_flight++;
                }
                if (sending) {
                    uint64_t next = t0 + slot * slot_ns;
                    struct itimerspec its = {0};
                    its.it_value.tv_sec = (time_t)(next / 1000000000ull);
                    its.it_value.tv_nsec = (long)(next % 1000000000ull);
                    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
                }
                continue;
            }
            conn_t *c = &cs[id];
            ssize_t r = read(c->fd, c->rx + c->rx_len, RXBUF - 1 - c->rx_len);
            if (r == 0) { fprintf(stderr, "mbload: server closed connection %u\n", id); exit(1); }
            if (r < 0) {
                if (errno == EAGAIN) continue;
                die("read");
            }
            c->rx_len += (size_t)r;
            int st = answer_state(c);
            if (st == 0) continue;
            if (st < 0) { fprintf(stderr, "mbload: malformed answer on connection %u\n", id); exit(1); }
            uint64_t done = now_ns();
            c->busy = 0;
            in_flight--;
            if (c->sent_ns >= measure_from_ns && done <= measure_to_ns) {
                if (st == 1) {
                    n_ok++;
                    if (n_samples < max_samples) {
                        uint64_t lat = done - c->sent_ns;
                        samples[n_samples++] = lat > 0xffffffffu ? 0xffffffffu : (uint32_t)lat;
                    }
                } else {
                    n_err++;
                }
            }
            if (!paced && sending && done < stop_ns) {
                if (send_request(c, conns) < 0) die("write");
                in_flight++;
            }
        }
    }
    qsort(samples, n_samples, sizeof *samples, cmp_u32);
    double mean = 0;
    for (size_t i = 0; i < n_samples; i++) mean += samples[i];
    mean = n_samples ? mean / (double)n_samples / 1000.0 : -1;
    printf("{\"conns\": %d, \"mode\": \"%s\", \"rate_hz\": %g, \"duration_s\": %g, "
           "\"ok\": %llu, \"errors\": %llu, \"missed\": %llu, \"unanswered\": %d, "
           "\"rps\": %.1f, \"mean_us\": %.1f, \"p50_us\": %.1f, \"p90_us\": %.1f, "
           "\"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f}\n",
           conns, paced ? "paced" : "closed", paced ? rate : 0.0, duration,
           (unsigned long long)n_ok, (unsigned long long)n_err, (unsigned long long)n_missed,
           in_flight, (double)n_ok / duration, mean, pct(50), pct(90), pct(99), pct(99.9),
           pct(100));
    return 0;
}
