/* fuzz_http.c: libFuzzer target for the HTTP server's request path
 * (pipeline/http/http.c: http-parser, pipelining, keep-alive, limits), end to end
 * through a real socket.
 *
 * One server runs on 127.0.0.1 (port 0: the kernel picks one) for the whole
 * process, with a handler that echoes the method and path (and answers
 * /big with 64 KiB, so that responses also go out in several writes). Per
 * input, a client connects, writes the input as it is, half-closes, and
 * reads until the server closes; the loop runs on this thread meanwhile, so
 * one input is one deterministic exchange. The connection never leaves the
 * machine: loopback only.
 *
 * Checks: the server always ends the exchange (a hang is a libFuzzer
 * timeout), and whatever it sends starts as an HTTP/1.1 status line. */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pipeline/http/http.h"
#include "tests/fuzz/fuzz_util.h"

#define BIG_BODY (64 * 1024)
#define KEEP 64 /* bytes of the reply kept for the check */

static uv_loop_t loop;
static struct http_server *srv;
static int port;

static void handler(void *ctx, const char *method, const char *path, struct http_response *r)
{
    (void)ctx;
    r->content_type = "text/plain";
    if (!strcmp(path, "/big")) {
        r->status = 200;
        r->body = malloc(BIG_BODY);
        if (r->body)
            memset(r->body, 'b', BIG_BODY);
        r->body_len = r->body ? BIG_BODY : 0;
        return;
    }
    r->status = strcmp(path, "/missing") ? 200 : 404;
    int n = asprintf(&r->body, "%s %s\n", method, path);
    r->body_len = n > 0 ? (size_t)n : 0;
    if (n < 0)
        r->body = NULL;
}

static void stop_server(void)
{
    http_stop(srv);
    uv_run(&loop, UV_RUN_DEFAULT); /* runs the close callbacks; then nothing is left */
    uv_loop_close(&loop);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[256];
    FUZZ_CHECK(uv_loop_init(&loop) == 0);
    if (http_start(&loop, "127.0.0.1:0", NULL, handler, NULL, &srv, err, sizeof err)) {
        fprintf(stderr, "http_start: %s\n", err);
        abort();
    }
    FUZZ_CHECK((port = http_port(srv)) > 0);
    atexit(stop_server);
    return 0;
}

/* One client exchange, driven by a uv_poll on the client's socket. */
struct client {
    uv_poll_t poll;
    int fd;
    const uint8_t *data;
    size_t size, sent;
    bool write_done, finished;
    char reply[KEEP];
    size_t got;
};

static void on_poll_closed(uv_handle_t *h)
{
    ((struct client *)h->data)->finished = true;
}

static void client_end(struct client *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->poll))
        uv_close((uv_handle_t *)&c->poll, on_poll_closed);
}

static void on_client(uv_poll_t *p, int status, int events)
{
    struct client *c = p->data;
    if (status < 0) {
        client_end(c);
        return;
    }
    if ((events & UV_WRITABLE) && !c->write_done) {
        ssize_t n = c->sent < c->size
                        ? send(c->fd, c->data + c->sent, c->size - c->sent, MSG_NOSIGNAL)
                        : 0;
        if (n > 0)
            c->sent += (size_t)n;
        /* Done, or the server closed its side early (an error answer). */
        if (c->sent == c->size || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            c->write_done = true;
            shutdown(c->fd, SHUT_WR);
            uv_poll_start(p, UV_READABLE, on_client);
        }
    }
    if (events & UV_READABLE) {
        char buf[16384];
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0 && c->got < KEEP) {
            size_t k = (size_t)n < KEEP - c->got ? (size_t)n : KEEP - c->got;
            memcpy(c->reply + c->got, buf, k);
            c->got += k;
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            client_end(c); /* the server closed (or reset) the connection */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct client c = {.data = data, .size = size};

    FUZZ_CHECK((c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) >= 0);
    FUZZ_CHECK(connect(c.fd, (struct sockaddr *)&a, sizeof a) == 0 || errno == EINPROGRESS);
    FUZZ_CHECK(uv_poll_init_socket(&loop, &c.poll, c.fd) == 0);
    c.poll.data = &c;
    FUZZ_CHECK(uv_poll_start(&c.poll, UV_READABLE | UV_WRITABLE, on_client) == 0);
    while (!c.finished)
        uv_run(&loop, UV_RUN_ONCE);
    close(c.fd);
    /* Lets the server see the close now rather than during the next input. */
    uv_run(&loop, UV_RUN_NOWAIT);

    static const char status_line[] = "HTTP/1.1 ";
    size_t n = c.got < sizeof status_line - 1 ? c.got : sizeof status_line - 1;
    if (memcmp(c.reply, status_line, n)) {
        fprintf(stderr, "the server sent something other than a response: %.*s\n",
                (int)c.got, c.reply);
        abort();
    }
    return 0;
}
