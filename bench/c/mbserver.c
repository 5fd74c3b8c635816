/* Tiny libmodbus TCP server: the C reference point of the Modbus benchmark.
 *
 * The classic libmodbus many-connection pattern (tests/bandwidth-server-many-up.c in the
 * libmodbus sources): one thread, select() over the listening socket and every client,
 * modbus_receive() + modbus_reply() on the ready one. 32 holding and 32 input registers with
 * fixed values; any unit id is answered (libmodbus does not filter unit ids on TCP).
 *
 * usage: mbserver PORT MAX_SECONDS   (PORT 0 = any free port; prints "READY <port>")
 * Bounded: exits after MAX_SECONDS whatever happens. Binds 127.0.0.1 only.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <modbus.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    double max_s = argc > 2 ? atof(argv[2]) : 600.0;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];

    modbus_t *ctx = modbus_new_tcp("127.0.0.1", port);
    modbus_mapping_t *map = modbus_mapping_new(0, 0, 32, 32);
    if (ctx == NULL || map == NULL) {
        fprintf(stderr, "mbserver: cannot allocate: %s\n", modbus_strerror(errno));
        return 1;
    }
    for (int i = 0; i < 32; i++) {
        map->tab_input_registers[i] = (uint16_t)(1000 + i);
        map->tab_registers[i] = (uint16_t)i;
    }
    int server = modbus_tcp_listen(ctx, 1024);
    if (server < 0) {
        fprintf(stderr, "mbserver: listen on %d failed: %s\n", port, modbus_strerror(errno));
        return 1;
    }
    struct sockaddr_in addr;
    socklen_t alen = sizeof addr;
    getsockname(server, (struct sockaddr *)&addr, &alen);
    printf("READY %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    fd_set refset, rdset;
    FD_ZERO(&refset);
    FD_SET(server, &refset);
    int fdmax = server;
    double deadline = now_s() + max_s;
    while (now_s() < deadline) {
        rdset = refset;
        struct timeval tv = {1, 0};
        int n = select(fdmax + 1, &rdset, NULL, NULL, &tv);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("select");
            break;
        }
        for (int fd = 0; fd <= fdmax && n > 0; fd++) {
            if (!FD_ISSET(fd, &rdset)) continue;
            n--;
            if (fd == server) {
                int c = accept(server, NULL, NULL);
                if (c < 0) continue;
                if (c >= FD_SETSIZE) { close(c); continue; }
                int one = 1;
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                FD_SET(c, &refset);
                if (c > fdmax) fdmax = c;
            } else {
                modbus_set_socket(ctx, fd);
                int rc = modbus_receive(ctx, query);
                if (rc > 0) {
                    modbus_reply(ctx, query, rc, map);
                } else if (rc == -1) {
                    close(fd);
                    FD_CLR(fd, &refset);
                }
            }
        }
    }
    modbus_mapping_free(map);
    modbus_free(ctx);
    return 0;
}
