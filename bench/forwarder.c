/*
 * bench/forwarder.c: a naive single-threaded UDP DNS forwarder, a bound for
 * the LS in bench/run's `ls` section (what one thread doing nothing but
 * recvfrom/sendto costs on this machine).
 *
 *   forwarder LISTEN_IP PORT BACKEND_IP:PORT [BACKEND_IP:PORT...]   (IPv4)
 *
 * One socket for the clients, one for the backends, one poll() loop; each
 * readable socket is drained with non-blocking recvfrom until EAGAIN. Every
 * query gets the next upstream ID of a table of 65,536 slots (the client's
 * address and its ID), backends taken in turn; the answer gets its ID back
 * and goes to the client. No timers: a slot is overwritten when its ID comes
 * round again. Datagrams under 12 bytes, answers from another address than
 * the slot's backend and answers whose slot is empty are dropped.
 *
 *   cc -O2 -Wall -Wextra -Werror -o forwarder bench/forwarder.c
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEADER_LEN 12
#define MAX_BACKENDS 64
#define SLOTS 65536
/* What the LS asks for its UDP sockets (src/server/socket.rs). */
#define RECV_BUFFER (4 << 20)

struct slot {
    struct sockaddr_in client;
    uint16_t id;
    uint8_t backend;
    uint8_t used;
};

static struct slot slots[SLOTS];
static struct sockaddr_in backends[MAX_BACKENDS];
static unsigned char buf[65536];

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int parse_addr(const char *ip, const char *port, struct sockaddr_in *out)
{
    char *end;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || p < 0 || p > 65535)
        return -1;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)p);
    return inet_pton(AF_INET, ip, &out->sin_addr) == 1 ? 0 : -1;
}

static int udp_socket(const struct sockaddr_in *bind_to)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (s < 0)
        die("socket");
    int size = RECV_BUFFER;
    /* Best effort, as in the LS: the kernel caps it at net.core.rmem_max. */
    (void)setsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    if (bind(s, (const struct sockaddr *)bind_to, sizeof(*bind_to)) < 0)
        die("bind");
    return s;
}

/* Reads one datagram into buf: its length, with its sender in *from; a
 * datagram shorter than a DNS header or from a non-IPv4 peer is skipped.
 * -1 once the socket has nothing more (EAGAIN, or an error: back to poll). */
static ssize_t recv_one(int fd, struct sockaddr_in *from)
{
    for (;;) {
        socklen_t from_len = sizeof(*from);
        ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)from, &from_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n >= HEADER_LEN && from_len == sizeof(*from))
            return n;
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: forwarder LISTEN_IP PORT BACKEND_IP:PORT [BACKEND_IP:PORT...]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc - 3 > MAX_BACKENDS)
        usage();
    struct sockaddr_in listen_addr, any;
    if (parse_addr(argv[1], argv[2], &listen_addr) < 0)
        usage();
    int n_backends = argc - 3;
    for (int i = 0; i < n_backends; i++) {
        char spec[64];
        snprintf(spec, sizeof(spec), "%s", argv[3 + i]);
        char *colon = strrchr(spec, ':');
        if (colon == NULL)
            usage();
        *colon = '\0';
        if (parse_addr(spec, colon + 1, &backends[i]) < 0)
            usage();
    }
    memset(&any, 0, sizeof(any));
    any.sin_family = AF_INET;
    any.sin_addr.s_addr = htonl(INADDR_ANY);

    signal(SIGPIPE, SIG_IGN);
    int client = udp_socket(&listen_addr);
    int upstream = udp_socket(&any);
    struct pollfd fds[2] = {{.fd = client, .events = POLLIN}, {.fd = upstream, .events = POLLIN}};
    uint16_t next_id = 0;
    int next_backend = 0;

    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        struct sockaddr_in from;
        ssize_t n;
        if (fds[0].revents) {
            while ((n = recv_one(client, &from)) >= 0) {
                uint16_t id = next_id++;
                struct slot *s = &slots[id];
                s->client = from;
                s->id = (uint16_t)(buf[0] << 8 | buf[1]);
                s->backend = (uint8_t)next_backend;
                s->used = 1;
                buf[0] = (unsigned char)(id >> 8);
                buf[1] = (unsigned char)id;
                const struct sockaddr_in *to = &backends[next_backend];
                next_backend = (next_backend + 1) % n_backends;
                /* A full send buffer drops the query, as a full queue would. */
                (void)sendto(upstream, buf, (size_t)n, 0, (const struct sockaddr *)to, sizeof(*to));
            }
        }
        if (fds[1].revents) {
            while ((n = recv_one(upstream, &from)) >= 0) {
                struct slot *s = &slots[(uint16_t)(buf[0] << 8 | buf[1])];
                if (!s->used)
                    continue;
                const struct sockaddr_in *b = &backends[s->backend];
                if (from.sin_port != b->sin_port || from.sin_addr.s_addr != b->sin_addr.s_addr)
                    continue;
                s->used = 0;
                buf[0] = (unsigned char)(s->id >> 8);
                buf[1] = (unsigned char)s->id;
                (void)sendto(client, buf, (size_t)n, 0, (const struct sockaddr *)&s->client,
                             sizeof(s->client));
            }
        }
    }
}
