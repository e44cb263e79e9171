/*
 * bench/reflector.c: a DNS "server" that does nothing, a bound in bench/run's
 * `ls` section: the kernel's cost of one receive and one send per query.
 *
 *   reflector LISTEN_IP PORT   (IPv4)
 *
 * Single thread, blocking recvfrom/sendto. Each query is answered in place:
 * its header and question kept, QR=1 AA=1 RCODE=NOERROR, one answer record
 * (a pointer to the question's name, 0xC00C, A IN TTL 300 192.0.2.1) and
 * nothing after it (an OPT record of the query is cut off). Datagrams under
 * 12 bytes, and those whose one question cannot be walked, are dropped.
 *
 *   cc -O2 -Wall -Wextra -Werror -o reflector bench/reflector.c
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEADER_LEN 12
/* What the LS asks for its UDP sockets (src/server/socket.rs). */
#define RECV_BUFFER (4 << 20)

static const unsigned char ANSWER[] = {
    0xC0, 0x0C,             /* name: pointer to the question's */
    0x00, 0x01, 0x00, 0x01, /* A, IN */
    0x00, 0x00, 0x01, 0x2C, /* TTL 300 */
    0x00, 0x04, 192, 0, 2, 1,
};

/* Room for the largest datagram plus the answer record. */
static unsigned char buf[65536 + sizeof(ANSWER)];

/* The end of the one question starting at HEADER_LEN, or 0 if it runs past
 * LEN or its name is not plain labels ending in the root. */
static size_t question_end(const unsigned char *p, size_t len)
{
    size_t i = HEADER_LEN;
    for (;;) {
        if (i >= len)
            return 0;
        unsigned char l = p[i];
        if (l == 0)
            break;
        if (l > 63)
            return 0; /* a compression pointer or a reserved label type */
        i += 1 + (size_t)l;
    }
    i += 1 + 4; /* the root label, QTYPE, QCLASS */
    return i <= len ? i : 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: reflector LISTEN_IP PORT\n");
        return 2;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    char *end;
    long port = strtol(argv[2], &end, 10);
    if (*argv[2] == '\0' || *end != '\0' || port < 0 || port > 65535 ||
        inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "usage: reflector LISTEN_IP PORT\n");
        return 2;
    }
    addr.sin_port = htons((uint16_t)port);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) {
        perror("socket");
        return 1;
    }
    int size = RECV_BUFFER;
    /* Best effort, as in the LS: the kernel caps it at net.core.rmem_max. */
    (void)setsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    if (bind(s, (const struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("bind");
        return 1;
    }
    for (;;) {
        struct sockaddr_in from;
        socklen_t from_len = sizeof(from);
        ssize_t n = recvfrom(s, buf, 65536, 0, (struct sockaddr *)&from, &from_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("recvfrom");
            return 1;
        }
        if (n < HEADER_LEN || buf[4] != 0 || buf[5] != 1)
            continue; /* QDCOUNT must be 1 */
        size_t q = question_end(buf, (size_t)n);
        if (q == 0)
            continue;
        buf[2] = (unsigned char)(0x80 | 0x04 | (buf[2] & 0x79)); /* QR, AA; opcode, RD kept */
        buf[3] = 0;                                               /* RA=0, Z=0, NOERROR */
        buf[6] = 0, buf[7] = 1;                                   /* ANCOUNT 1 */
        buf[8] = buf[9] = buf[10] = buf[11] = 0;                  /* NSCOUNT, ARCOUNT 0 */
        memcpy(buf + q, ANSWER, sizeof(ANSWER));
        (void)sendto(s, buf, q + sizeof(ANSWER), 0, (const struct sockaddr *)&from, from_len);
    }
}
