/* fd_writer PORT FILE N M K M2 PAUSE_MS: write(2) one byte N times to FILE, M times to a TCP connection
   to 127.0.0.1:PORT and K times to a unix socket, interleaved (file, tcp, unix, file, tcp, ...); wait
   PAUSE_MS; close FILE, open a second TCP connection (it gets FILE's fd number back) and write M2
   times to it. The fds stay open 0.3 s before exit. Prints nothing: every write is one of these. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int tcp(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) return -1;
    return s;
}

int main(int argc, char **argv) {
    if (argc < 8) return 2;
    int port = atoi(argv[1]);
    long n = atol(argv[3]), m = atol(argv[4]), k = atol(argv[5]), m2 = atol(argv[6]);
    int sock = tcp(port);
    int file = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int pair[2];
    if (sock < 0 || file < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) return 3;
    long most = n > m ? n : m;
    most = most > k ? most : k;
    for (long i = 0; i < most; i++) {
        if (i < n && write(file, "x", 1) != 1) return 4;
        if (i < m && write(sock, "y", 1) != 1) return 5;
        if (i < k && write(pair[0], "z", 1) != 1) return 6;
    }
    struct timespec pause = {atol(argv[7]) / 1000, (atol(argv[7]) % 1000) * 1000000L};
    nanosleep(&pause, NULL);
    close(file);
    int sock2 = tcp(port);
    if (sock2 != file) return 7; /* the lowest free number: FILE's */
    for (long i = 0; i < m2; i++)
        if (write(sock2, "w", 1) != 1) return 8;
    struct timespec t = {0, 300000000};
    nanosleep(&t, NULL);
    return 0;
}
