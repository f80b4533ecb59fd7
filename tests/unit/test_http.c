/* test_http.c: the HTTP server against real sockets, and the Prometheus
 * rendering of the metrics.
 *
 * Each server test runs the server on a libuv loop in the test's thread and
 * a client in a second thread with plain blocking sockets. The client only
 * records what it receives (cmocka cannot fail from another thread), then
 * wakes the loop to stop the server; the test asserts after joining it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pipeline/http/http.h"
#include "pipeline/run/metrics.h"

#define MAX_EXCHANGES 8

struct fixture;
typedef void (*client_fn)(struct fixture *f);

struct fixture {
    uv_loop_t loop;
    uv_async_t stop;
    struct http_server *srv;
    const struct http_options *opts; /* NULL: the defaults */
    struct http_stats stats;         /* taken just before the stop */
    int family, port;
    client_fn client;
    char *reply[MAX_EXCHANGES];   /* what the client received, NUL-terminated */
    int handled;                  /* handler calls, on the loop thread */
    bool stop_sent;               /* by the client thread */
    bool closed[MAX_EXCHANGES];   /* the server closed a connection the client held */
};

/* Echoes "METHOD PATH\n"; /missing is 404 with a JSON body. */
static void echo_handler(void *ctx, const char *method, const char *path,
                         struct http_response *resp)
{
    struct fixture *f = ctx;
    f->handled++;
    if (!strcmp(path, "/missing")) {
        resp->status = 404;
        resp->content_type = "application/json";
        resp->body = strdup("{\"error\":\"not found\"}");
    } else {
        resp->status = 200;
        resp->content_type = "text/plain";
        assert_true(asprintf(&resp->body, "%s %s\n", method, path) > 0);
    }
    resp->body_len = strlen(resp->body);
}

/* ---- the client thread -------------------------------------------------- */

static int client_connect(struct fixture *f)
{
    int fd = socket(f->family, SOCK_STREAM, 0);
    struct timeval tv = {5, 0}; /* a hung server fails the test instead of hanging it */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)f->port)};
    a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a6.sin6_addr = in6addr_loopback;
    int rc = f->family == AF_INET ? connect(fd, (struct sockaddr *)&a4, sizeof a4)
                                  : connect(fd, (struct sockaddr *)&a6, sizeof a6);
    if (rc) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

/* Reads until the server closes; returns a malloc'd NUL-terminated copy. */
static char *recv_all(int fd)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    char chunk[4096];
    ssize_t n;
    while ((n = recv(fd, chunk, sizeof chunk, 0)) > 0)
        fwrite(chunk, 1, (size_t)n, out);
    fclose(out);
    return buf;
}

/* Reads one response, headers and then Content-Length bytes of body (none
 * for a HEAD), and nothing of the next; NULL if the connection ends first. */
static char *recv_response(int fd, bool head)
{
    char buf[16384];
    size_t len = 0;
    while (len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4)) {
        if (len == sizeof buf - 1 || recv(fd, buf + len, 1, 0) != 1)
            return NULL;
        len++;
    }
    buf[len] = '\0';
    const char *cl = strstr(buf, "\r\nContent-Length: ");
    size_t body = cl && !head ? strtoul(cl + 18, NULL, 10) : 0;
    if (len + body >= sizeof buf)
        return NULL;
    while (body > 0) {
        ssize_t n = recv(fd, buf + len, body, 0);
        if (n <= 0)
            return NULL;
        len += (size_t)n;
        body -= (size_t)n;
    }
    buf[len] = '\0';
    return strdup(buf);
}

/* True if the server closed the connection (rather than the wait timing out). */
static bool server_closed(int fd)
{
    char c;
    return recv(fd, &c, 1, 0) == 0;
}

/* Sends the request in the given parts, a little apart so that the server
 * sees them in separate reads, and returns the whole response. */
static char *exchange_parts(struct fixture *f, const char *const *parts, int n)
{
    int fd = client_connect(f);
    if (fd < 0)
        return NULL;
    for (int i = 0; i < n; i++) {
        if (i)
            nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
        send_all(fd, parts[i], strlen(parts[i]));
    }
    char *reply = recv_all(fd);
    close(fd);
    return reply;
}

static char *exchange(struct fixture *f, const char *request)
{
    return exchange_parts(f, &request, 1);
}

/* Wakes the loop to stop the server, once: the async handle is closed after. */
static void request_stop(struct fixture *f)
{
    if (!f->stop_sent)
        uv_async_send(&f->stop);
    f->stop_sent = true;
}

static void *client_thread(void *arg)
{
    struct fixture *f = arg;
    f->client(f);
    request_stop(f);
    return NULL;
}

/* ---- the server side ---------------------------------------------------- */

static void on_stop(uv_async_t *a)
{
    struct fixture *f = a->data;
    http_stats(f->srv, &f->stats);
    http_stop(f->srv);
    uv_close((uv_handle_t *)a, NULL);
}

/* Starts a server on listen, runs client in a thread until it is done, stops
 * the server and runs the loop until every handle is closed. Returns false
 * (nothing run) if the server could not start. */
static bool run_with_client(struct fixture *f, const char *listen, client_fn client)
{
    pthread_t thread;
    char err[256];
    uv_loop_init(&f->loop);
    if (http_start(&f->loop, listen, f->opts, echo_handler, f, &f->srv, err, sizeof err)) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
        uv_loop_close(&f->loop);
        return false;
    }
    f->port = http_port(f->srv);
    f->family = listen[0] == '[' ? AF_INET6 : AF_INET;
    f->client = client;
    uv_async_init(&f->loop, &f->stop, on_stop);
    f->stop.data = f;
    assert_int_equal(pthread_create(&thread, NULL, client_thread, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(thread, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* nothing left open */
    return true;
}

static void free_replies(struct fixture *f)
{
    for (int i = 0; i < MAX_EXCHANGES; i++)
        free(f->reply[i]);
}

/* ---- tests -------------------------------------------------------------- */

static void client_get_and_head(struct fixture *f)
{
    f->reply[0] = exchange(f, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    f->reply[1] = exchange(f, "HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    f->reply[2] = exchange(f, "GET /missing HTTP/1.0\r\n\r\n");
}

static void test_get_head_and_404(void **state)
{
    (void)state;
    struct fixture f = {0};
    assert_true(run_with_client(&f, "127.0.0.1:0", client_get_and_head));
    assert_string_equal(f.reply[0], "HTTP/1.1 200 OK\r\n"
                                    "Content-Type: text/plain\r\n"
                                    "Content-Length: 11\r\n"
                                    "Connection: close\r\n"
                                    "\r\n"
                                    "GET /hello\n");
    /* HEAD: GET's headers (the length of the body it would have), no body. */
    assert_string_equal(f.reply[1], "HTTP/1.1 200 OK\r\n"
                                    "Content-Type: text/plain\r\n"
                                    "Content-Length: 12\r\n"
                                    "Connection: close\r\n"
                                    "\r\n");
    assert_string_equal(f.reply[2], "HTTP/1.1 404 Not Found\r\n"
                                    "Content-Type: application/json\r\n"
                                    "Content-Length: 21\r\n"
                                    "Connection: close\r\n"
                                    "\r\n"
                                    "{\"error\":\"not found\"}");
    assert_int_equal(f.handled, 3);
    free_replies(&f);
}

static void client_split_request(struct fixture *f)
{
    static const char *const parts[] = {"GET /us", "ers/a%20b/x?k=1&j=2 HTT",
                                        "P/1.1\r\nHost: x\r\nConnection: close\r\n", "\r\n"};
    f->reply[0] = exchange_parts(f, parts, 4);
}

/* A request that arrives in pieces; the handler gets the path only, still
 * percent-encoded (decoding is the route's business). */
static void test_split_request_and_query(void **state)
{
    (void)state;
    struct fixture f = {0};
    assert_true(run_with_client(&f, "127.0.0.1:0", client_split_request));
    assert_non_null(f.reply[0]);
    assert_non_null(strstr(f.reply[0], "\r\n\r\nGET /users/a%20b/x\n"));
    free_replies(&f);
}

static void client_rejected(struct fixture *f)
{
    char big[12000];
    f->reply[0] = exchange(
        f, "POST /hello HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
    /* Headers beyond the request limit. */
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX-Big: %0*d\r\n\r\n", 10000, 0);
    f->reply[1] = exchange(f, big);
    /* A body beyond it. */
    snprintf(big, sizeof big, "PUT / HTTP/1.1\r\nContent-Length: 10000\r\n\r\n%0*d", 10000, 0);
    f->reply[2] = exchange(f, big);
    f->reply[3] = exchange(f, "NOT HTTP AT ALL\r\n\r\n");
}

static void assert_starts(const char *reply, const char *want)
{
    assert_non_null(reply);
    if (strncmp(reply, want, strlen(want)))
        fail_msg("got '%.80s', want '%s'", reply, want);
}

static void test_rejected_requests(void **state)
{
    (void)state;
    struct fixture f = {0};
    assert_true(run_with_client(&f, "127.0.0.1:0", client_rejected));
    assert_starts(f.reply[0], "HTTP/1.1 405 Method Not Allowed\r\n");
    assert_non_null(strstr(f.reply[0], "\r\nAllow: GET, HEAD\r\n"));
    assert_non_null(strstr(f.reply[0], "\r\nConnection: close\r\n"));
    assert_starts(f.reply[1], "HTTP/1.1 431 Request Header Fields Too Large\r\n");
    assert_starts(f.reply[2], "HTTP/1.1 413 Content Too Large\r\n");
    assert_starts(f.reply[3], "HTTP/1.1 400 Bad Request\r\n");
    assert_int_equal(f.handled, 0);
    free_replies(&f);
}

/* http_stop must close a connection that is still open and idle (and the
 * sanitizers see that nothing leaks). The client sends half a request,
 * asks for the stop and then waits for the server to close. */
static void client_idle(struct fixture *f)
{
    int quiet = client_connect(f);
    int gone = client_connect(f); /* connects and leaves at once */
    close(gone);
    send_all(quiet, "GET / HTTP/1.1\r\n", 16);
    f->reply[0] = exchange(f, "GET /still-serving HTTP/1.1\r\nConnection: close\r\n\r\n");
    request_stop(f);
    f->reply[1] = recv_all(quiet);
    close(quiet);
}

static void test_stop_closes_open_connections(void **state)
{
    (void)state;
    struct fixture f = {0};
    assert_true(run_with_client(&f, "127.0.0.1:0", client_idle));
    assert_starts(f.reply[0], "HTTP/1.1 200 OK\r\n");
    assert_string_equal(f.reply[1], ""); /* closed without a response */
    free_replies(&f);
}

static void client_one_get(struct fixture *f)
{
    f->reply[0] = exchange(f, "GET /v6 HTTP/1.1\r\nConnection: close\r\n\r\n");
}

static void test_ipv6(void **state)
{
    (void)state;
    struct fixture f = {0};
    if (!run_with_client(&f, "[::1]:0", client_one_get))
        skip(); /* no IPv6 loopback here */
    assert_non_null(strstr(f.reply[0], "\r\n\r\nGET /v6\n"));
    free_replies(&f);
}

static void test_bad_listen(void **state)
{
    (void)state;
    static const char *const bad[] = {"nohost", "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000",
                                      "127.0.0.1:-1", "localhost:9464", "[::1:80", "::1:80",
                                      "127.0.0.1:80x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uv_loop_t loop;
        struct http_server *s = NULL;
        char err[256];
        uv_loop_init(&loop);
        assert_int_not_equal(
            http_start(&loop, bad[i], NULL, echo_handler, NULL, &s, err, sizeof err), 0);
        assert_null(s);
        assert_non_null(strstr(err, bad[i]));
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(uv_loop_close(&loop), 0);
    }
}

/* A port in use fails at start, and the half-made server is released. */
static void test_port_in_use(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct http_server *a, *b = NULL;
    char err[256], listen[64];
    uv_loop_init(&loop);
    assert_int_equal(
        http_start(&loop, "127.0.0.1:0", NULL, echo_handler, NULL, &a, err, sizeof err), 0);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", http_port(a));
    assert_int_not_equal(
        http_start(&loop, listen, NULL, echo_handler, NULL, &b, err, sizeof err), 0);
    assert_null(b);
    assert_non_null(strstr(err, listen));
    assert_non_null(strstr(err, "address already in use"));
    http_stop(a);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- keep-alive and the connection cap ---------------------------------- */

/* echo_handler's answer to a GET, its body being len bytes. */
#define ECHOED(len, connection, body)                                                           \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " len "\r\n"             \
    "Connection: " connection "\r\n\r\n" body
/* The server's answer when the cap leaves no room for the request. */
#define OVERLOADED                                                                            \
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"        \
    "Content-Length: 20\r\nRetry-After: 1\r\nConnection: close\r\n\r\nService Unavailable\n"

static void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

static void assert_reply(const char *got, const char *want)
{
    assert_non_null(got);
    assert_string_equal(got, want);
}

static void client_keep_alive(struct fixture *f)
{
    int fd = client_connect(f);
    if (fd < 0)
        return;
    send_str(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    f->reply[0] = recv_response(fd, false);
    send_str(fd, "HEAD /b HTTP/1.1\r\n\r\n");
    f->reply[1] = recv_response(fd, true);
    send_str(fd, "GET /c HTTP/1.1\r\nConnection: close\r\n\r\n");
    f->reply[2] = recv_all(fd); /* ends only if the server closes */
    close(fd);
}

/* Three requests on one connection, each sent after the previous answer. */
static void test_keep_alive(void **state)
{
    (void)state;
    struct fixture f = {0};
    assert_true(run_with_client(&f, "127.0.0.1:0", client_keep_alive));
    assert_reply(f.reply[0], ECHOED("7", "keep-alive", "GET /a\n"));
    assert_reply(f.reply[1], "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             "Content-Length: 8\r\nConnection: keep-alive\r\n\r\n");
    assert_reply(f.reply[2], ECHOED("7", "close", "GET /c\n"));
    assert_int_equal(f.handled, 3);
    free_replies(&f);
}

static void client_pipelined(struct fixture *f)
{
    /* The HTTP/1.0 request ends the connection: /e is never answered. */
    f->reply[0] = exchange(f, "GET /a HTTP/1.1\r\n\r\n"
                              "HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /missing HTTP/1.1\r\n\r\n"
                              "GET /d HTTP/1.0\r\n\r\n"
                              "GET /e HTTP/1.1\r\n\r\n");
}

/* Requests sent at once, answered in order on the one connection. */
static void test_pipelined(void **state)
{
    (void)state;
    struct fixture f = {0};
    assert_true(run_with_client(&f, "127.0.0.1:0", client_pipelined));
    assert_reply(f.reply[0], ECHOED("7", "keep-alive", "GET /a\n")
                             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             "Content-Length: 8\r\nConnection: keep-alive\r\n\r\n"
                             "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                             "Content-Length: 21\r\nConnection: keep-alive\r\n\r\n"
                             "{\"error\":\"not found\"}" ECHOED("7", "close", "GET /d\n"));
    assert_int_equal(f.handled, 4);
    free_replies(&f);
}

#define N_PIPELINED 600 /* about 14 KB of requests: more than one read */

static char *many_requests(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    for (int i = 0; i < N_PIPELINED; i++)
        fprintf(out, "GET /n%03d HTTP/1.1\r\n%s\r\n", i,
                i == N_PIPELINED - 1 ? "Connection: close\r\n" : "");
    fclose(out);
    return buf;
}

static char *many_responses(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    for (int i = 0; i < N_PIPELINED; i++)
        fprintf(out,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n"
                "Connection: %s\r\n\r\nGET /n%03d\n",
                i == N_PIPELINED - 1 ? "close" : "keep-alive", i);
    fclose(out);
    return buf;
}

static void client_pipelined_across_reads(struct fixture *f)
{
    static const char *const parts[] = {"GET /a HTTP/1.1\r\n\r\nGET /b HT",
                                        "TP/1.1\r\nConnection: close\r\n\r\n"};
    f->reply[0] = exchange_parts(f, parts, 2);
    char *requests = many_requests();
    f->reply[1] = exchange(f, requests);
    free(requests);
}

/* A request split between what came with the previous one and a later read;
 * and more pipelined requests than one read holds. */
static void test_pipelined_across_reads(void **state)
{
    (void)state;
    struct fixture f = {0};
    assert_true(run_with_client(&f, "127.0.0.1:0", client_pipelined_across_reads));
    assert_reply(f.reply[0],
                 ECHOED("7", "keep-alive", "GET /a\n") ECHOED("7", "close", "GET /b\n"));
    char *want = many_responses();
    assert_reply(f.reply[1], want);
    free(want);
    assert_int_equal(f.handled, 2 + N_PIPELINED);
    free_replies(&f);
}

#define N_IDLE 200

/* Holds N_IDLE connections that never send anything, then probes. */
static void client_idle_crowd(struct fixture *f)
{
    int fds[N_IDLE];
    for (int i = 0; i < N_IDLE; i++)
        fds[i] = client_connect(f);
    f->reply[0] = exchange(f, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
    f->reply[1] = exchange(f, "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
    /* Under a small cap, the connection idle longest made room first. */
    if (f->opts && fds[0] >= 0)
        f->closed[0] = server_closed(fds[0]);
    for (int i = 0; i < N_IDLE; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static void assert_probes_answered(const struct fixture *f)
{
    assert_reply(f->reply[0], ECHOED("13", "close", "GET /healthz\n"));
    assert_reply(f->reply[1], ECHOED("13", "close", "GET /metrics\n"));
}

/* The acceptance test of the cap: probes on new connections are answered
 * while N_IDLE idle connections are held open, with the default cap (room
 * for all) and with a cap of 8 (the idle ones are evicted). */
static void test_probes_past_idle_connections(void **state)
{
    (void)state;
    struct fixture f = {0};
    assert_true(run_with_client(&f, "127.0.0.1:0", client_idle_crowd));
    assert_probes_answered(&f);
    assert_int_equal(f.stats.evicted, 0);
    assert_int_equal(f.stats.rejected, 0);
    free_replies(&f);

    struct http_options small = {.max_connections = 8};
    struct fixture g = {.opts = &small};
    assert_true(run_with_client(&g, "127.0.0.1:0", client_idle_crowd));
    assert_probes_answered(&g);
    assert_true(g.closed[0]);
    /* 192 to seat the crowd, 1 for /healthz; /metrics took the slot /healthz left. */
    assert_int_equal(g.stats.evicted, N_IDLE - 8 + 1);
    assert_int_equal(g.stats.rejected, 0);
    free_replies(&g);
}

#define N_SERVED 8
#define N_RESERVE 16 /* PROBE_RESERVE in http.c */

/* Fills every served slot with a connection in the middle of a request
 * (nothing to evict), then the probe reserve with connections that have
 * not sent anything yet. */
static void client_reserve(struct fixture *f)
{
    int busy[N_SERVED], probes[N_RESERVE];
    for (int i = 0; i < N_SERVED; i++) {
        /* /x is answered; /y stays half sent. The server parses the half
         * request when the write of /x's response completes, which libuv
         * reports before it next polls for connections: so by the time
         * the client connects again, this connection is mid-request. */
        busy[i] = client_connect(f);
        send_str(busy[i], "GET /x HTTP/1.1\r\n\r\nGET /y HT");
        char *r = recv_response(busy[i], false);
        if (i == 0)
            f->reply[0] = r;
        else
            free(r);
    }
    f->reply[1] = exchange(f, "GET /users/u1 HTTP/1.1\r\n\r\n");
    f->reply[2] = exchange(f, "GET /healthz HTTP/1.1\r\n\r\n");
    for (int i = 0; i < N_RESERVE; i++)
        probes[i] = client_connect(f);
    f->reply[3] = exchange(f, "GET /healthz HTTP/1.1\r\n\r\n");
    send_str(probes[0], "HEAD /readyz HTTP/1.1\r\n\r\n");
    f->reply[4] = recv_all(probes[0]);
    send_str(probes[1], "GET /metrics?x=1 HTTP/1.1\r\n\r\n");
    f->reply[5] = recv_all(probes[1]);
    send_str(probes[2], "GET /hello HTTP/1.1\r\n\r\n");
    f->reply[6] = recv_all(probes[2]);
    send_str(busy[0], "TP/1.1\r\nConnection: close\r\n\r\n");
    f->reply[7] = recv_all(busy[0]);
    for (int i = 0; i < N_SERVED; i++)
        close(busy[i]);
    for (int i = 0; i < N_RESERVE; i++)
        close(probes[i]);
}

static void test_probe_reserve(void **state)
{
    (void)state;
    struct http_options small = {.max_connections = N_SERVED};
    struct fixture f = {.opts = &small};
    assert_true(run_with_client(&f, "127.0.0.1:0", client_reserve));
    assert_reply(f.reply[0], ECHOED("7", "keep-alive", "GET /x\n"));
    /* Probe-only: other paths get 503; probes are answered, once each. */
    assert_reply(f.reply[1], OVERLOADED);
    assert_reply(f.reply[2], ECHOED("13", "close", "GET /healthz\n"));
    /* The reserve is full: 503 at once, probe or not. */
    assert_reply(f.reply[3], OVERLOADED);
    /* ... but the connections in it are still served. */
    assert_reply(f.reply[4], "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             "Content-Length: 13\r\nConnection: close\r\n\r\n");
    assert_reply(f.reply[5], ECHOED("13", "close", "GET /metrics\n"));
    assert_reply(f.reply[6], OVERLOADED);
    /* The half-sent request completes normally. */
    assert_reply(f.reply[7], ECHOED("7", "close", "GET /y\n"));
    assert_int_equal(f.stats.rejected, 3);
    assert_int_equal(f.stats.evicted, 0);
    assert_int_equal(f.handled, N_SERVED + 4);
    free_replies(&f);
}

static void client_idle_timeout(struct fixture *f)
{
    int fresh = client_connect(f);
    int used = client_connect(f);
    if (fresh < 0 || used < 0)
        return;
    send_str(used, "GET /a HTTP/1.1\r\n\r\n");
    f->reply[0] = recv_response(used, false);
    f->closed[0] = server_closed(fresh);
    f->closed[1] = server_closed(used);
    close(fresh);
    close(used);
}

/* Idle connections are closed: one that never sent a request, and one
 * after its keep-alive response. */
static void test_idle_timeout(void **state)
{
    (void)state;
    struct http_options quick = {.idle_timeout_ms = 200};
    struct fixture f = {.opts = &quick};
    assert_true(run_with_client(&f, "127.0.0.1:0", client_idle_timeout));
    assert_reply(f.reply[0], ECHOED("7", "keep-alive", "GET /a\n"));
    assert_true(f.closed[0]);
    assert_true(f.closed[1]);
    assert_int_equal(f.stats.connections, 0);
    free_replies(&f);
}

/* ---- metrics ------------------------------------------------------------ */

static const char *line_value(const char *text, const char *series)
{
    char want[160];
    snprintf(want, sizeof want, "\n%s ", series);
    const char *p = strstr(text, want);
    return p ? p + strlen(want) : NULL;
}

static void assert_sample(const char *text, const char *series, const char *value)
{
    const char *v = line_value(text, series);
    if (!v || strncmp(v, value, strlen(value)) || v[strlen(value)] != '\n')
        fail_msg("%s: want %s", series, value);
}

static void test_metrics_render(void **state)
{
    (void)state;
    struct eddy_metrics m = {
        .input_topic = {"clicks", "ad-events", "odd\"name"},
        .events_in = {7, 8, 9},
        .dlq = {1, 0, 0},
        .recommendations_out = 3,
        .consumer_lag = -1,
        .state_users = 12,
    };
    static const double obs[] = {0.0001, 0.0005, 0.003, 0.7, 20, -1};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        metrics_observe_latency(&m, obs[i]);
    char *text = metrics_render(&m);
    assert_non_null(text);

    assert_true(text[strlen(text) - 1] == '\n');
    assert_non_null(strstr(text, "# TYPE eddy_events_in_total counter\n"));
    assert_non_null(strstr(text, "# HELP eddy_events_in_total "));
    assert_sample(text, "eddy_events_in_total{topic=\"ad-events\"}", "8");
    assert_sample(text, "eddy_events_in_total{topic=\"odd\\\"name\"}", "9");
    assert_sample(text, "eddy_dlq_total{topic=\"clicks\"}", "1");
    assert_sample(text, "eddy_recommendations_out_total", "3");
    assert_sample(text, "eddy_decisions_out_total", "0");
    assert_sample(text, "eddy_produce_errors_total", "0");
    assert_sample(text, "eddy_commits_total", "0");
    assert_sample(text, "eddy_consumer_lag", "-1");
    assert_sample(text, "eddy_state_users", "12");
    assert_non_null(strstr(text, "# TYPE eddy_state_bytes gauge\n"));
    assert_non_null(strstr(text, "# TYPE eddy_processing_latency_seconds histogram\n"));

    /* Cumulative buckets; the upper bound is inclusive; -1 is not observed. */
    static const char *const want[][2] = {
        {"0.0005", "2"}, {"0.001", "2"}, {"0.0025", "2"}, {"0.005", "3"}, {"0.01", "3"},
        {"0.025", "3"},  {"0.05", "3"},  {"0.1", "3"},    {"0.25", "3"},  {"0.5", "3"},
        {"1", "4"},      {"2.5", "4"},   {"5", "4"},      {"10", "4"},    {"+Inf", "5"},
    };
    int buckets = 0;
    for (const char *p = text; (p = strstr(p, "_bucket{")); p++)
        buckets++;
    assert_int_equal(buckets, METRICS_LAT_BUCKETS + 1);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char series[96];
        snprintf(series, sizeof series, "eddy_processing_latency_seconds_bucket{le=\"%s\"}",
                 want[i][0]);
        assert_sample(text, series, want[i][1]);
    }
    assert_sample(text, "eddy_processing_latency_seconds_count", "5");
    double sum = strtod(line_value(text, "eddy_processing_latency_seconds_sum"), NULL);
    assert_true(sum > 20.70359 && sum < 20.70361);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_head_and_404),
        cmocka_unit_test(test_split_request_and_query),
        cmocka_unit_test(test_rejected_requests),
        cmocka_unit_test(test_stop_closes_open_connections),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_pipelined_across_reads),
        cmocka_unit_test(test_probes_past_idle_connections),
        cmocka_unit_test(test_probe_reserve),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_bad_listen),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_metrics_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
