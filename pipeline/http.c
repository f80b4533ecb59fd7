/* http.c: GET and HEAD over libuv, one request per connection.
 *
 * A connection reads one request (http-parser), answers it with
 * "Connection: close", half-closes, then waits briefly for the client to
 * close first: closing a socket that still holds unread request bytes would
 * send a reset, which can destroy the response before the client reads it.
 * A timer sweeps connections past their deadline. */
#include "pipeline/http.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REQUEST 8192        /* request line, headers and body */
#define MAX_CONNS 64
#define REQUEST_TIMEOUT_MS 10000 /* to receive a request, or to send the response */
#define LINGER_MS 2000          /* for the client to close after the response */
#define SWEEP_MS 1000

enum conn_state { READING, WRITING, DRAINING };

struct conn {
    uv_tcp_t tcp;
    struct http_server *srv;
    struct conn *prev, *next;
    http_parser parser;
    enum conn_state state;
    bool headers_done, complete, peer_closed;
    uint64_t deadline;          /* in uv_now() time */
    size_t received, url_len;
    char url[MAX_REQUEST + 1];  /* +1: room to terminate the path in place */
    char rbuf[4096];
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    char *head, *body;          /* of the response being written */
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t sweep;
    http_handler handler;
    void *ctx;
    struct conn *conns;
    int n_conns;
    int open_handles;           /* the server is freed when the last one closes */
    bool stopping;
};

static void respond(struct conn *c, int status, const char *type, char *body, size_t len,
                    bool head_only);

/* ---- closing ------------------------------------------------------------ */

static void handle_closed(struct http_server *s)
{
    if (--s->open_handles == 0 && s->stopping)
        free(s);
}

static void on_server_handle_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    free(c);
    handle_closed(s);
}

static void conn_close(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* ---- requests ----------------------------------------------------------- */

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->url_len + len > MAX_REQUEST)
        return 1;
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    ((struct conn *)p->data)->headers_done = true;
    return 0;
}

/* Pausing stops the parser at the end of the first request: anything sent
 * after it is ignored rather than parsed into the same url. */
static int on_message_complete(http_parser *p)
{
    ((struct conn *)p->data)->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_url = on_url,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "";
    }
}

static void respond_error(struct conn *c, int status)
{
    char *body;
    int len = asprintf(&body, "%s\n", reason(status));
    if (len < 0) {
        conn_close(c);
        return;
    }
    respond(c, status, "text/plain; charset=utf-8", body, (size_t)len, false);
}

/* The path of the request target, without query or fragment, terminated in
 * place in c->url; NULL if the target has none. */
static const char *url_path(struct conn *c)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(c->url, c->url_len, 0, &u) || !(u.field_set & (1 << UF_PATH)))
        return NULL;
    char *path = c->url + u.field_data[UF_PATH].off;
    path[u.field_data[UF_PATH].len] = '\0';
    return path;
}

static void dispatch(struct conn *c)
{
    enum http_method m = c->parser.method;
    if (m != HTTP_GET && m != HTTP_HEAD) {
        respond_error(c, 405);
        return;
    }
    const char *path = url_path(c);
    if (!path) {
        respond_error(c, 400);
        return;
    }
    struct http_response r = {.status = 500, .content_type = "text/plain; charset=utf-8"};
    c->srv->handler(c->srv->ctx, http_method_str(m), path, &r);
    respond(c, r.status, r.content_type, r.body, r.body_len, m == HTTP_HEAD);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (nread < 0 && c->state == WRITING) {
        /* The client is done sending; let the response finish first. */
        c->peer_closed = true;
        uv_read_stop(stream);
    } else if (nread < 0) {
        conn_close(c);
    } else if (nread > 0 && c->state == READING) {
        c->received += (size_t)nread;
        if (c->received > MAX_REQUEST) {
            respond_error(c, c->headers_done ? 413 : 431);
            return;
        }
        http_parser_execute(&c->parser, &parser_settings, buf->base, (size_t)nread);
        if (c->complete)
            dispatch(c);
        else if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK)
            respond_error(c, 400);
    }
    /* Bytes after the request are read and dropped (see the top of the file). */
}

/* ---- responses ---------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    if (status < 0)
        conn_close(req->data);
}

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    free(c->head);
    free(c->body);
    c->head = c->body = NULL;
    if (status < 0 || c->peer_closed) {
        conn_close(c);
        return;
    }
    c->state = DRAINING;
    c->deadline = uv_now(c->srv->loop) + LINGER_MS;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown))
        conn_close(c);
}

/* Takes ownership of body. */
static void respond(struct conn *c, int status, const char *type, char *body, size_t len,
                    bool head_only)
{
    char *head;
    int n = asprintf(&head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: close\r\n\r\n",
                     status, reason(status), type, len,
                     status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (n < 0) {
        free(body);
        conn_close(c);
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)n), uv_buf_init(body, (unsigned)len)};
    c->head = head;
    c->body = body;
    c->state = WRITING;
    c->deadline = uv_now(c->srv->loop) + REQUEST_TIMEOUT_MS;
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, head_only || !len ? 1 : 2,
                 on_written)) {
        free(c->head);
        free(c->body);
        c->head = c->body = NULL;
        conn_close(c);
    }
}

/* ---- the server --------------------------------------------------------- */

static void on_connection(uv_stream_t *listener, int status)
{
    struct http_server *s = listener->data;
    struct conn *c = status < 0 ? NULL : calloc(1, sizeof *c);
    if (!c)
        return;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->srv = s;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    s->open_handles++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) || s->n_conns > MAX_CONNS) {
        conn_close(c);
        return;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->deadline = uv_now(s->loop) + REQUEST_TIMEOUT_MS;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
        conn_close(c);
}

static void on_sweep(uv_timer_t *t)
{
    struct http_server *s = t->data;
    uint64_t now = uv_now(s->loop);
    for (struct conn *c = s->conns; c; c = c->next)
        if (now >= c->deadline)
            conn_close(c);
}

/* "1.2.3.4:80" or "[::1]:80"; port 0 picks a free port. */
static int parse_listen(const char *listen, struct sockaddr_storage *addr, char *err,
                        size_t errlen)
{
    const char *colon = strrchr(listen, ':');
    char host[64], *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    size_t hlen = colon ? (size_t)(colon - listen) : 0;
    bool v6 = hlen >= 2 && listen[0] == '[' && listen[hlen - 1] == ']';
    int rc = -1;
    if (colon && colon[1] >= '0' && colon[1] <= '9' && !*end && port <= 65535 &&
        hlen < sizeof host) {
        snprintf(host, sizeof host, "%.*s", (int)(v6 ? hlen - 2 : hlen), listen + (v6 ? 1 : 0));
        rc = v6 ? uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)addr)
                : uv_ip4_addr(host, (int)port, (struct sockaddr_in *)addr);
    }
    if (rc)
        snprintf(err, errlen,
                 "http: listen \"%s\" is not IPv4-address:port or [IPv6-address]:port", listen);
    return rc ? -1 : 0;
}

int http_start(uv_loop_t *loop, const char *listen, http_handler h, void *ctx,
               struct http_server **out, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    if (parse_listen(listen, &addr, err, errlen))
        return -1;
    struct http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "http: out of memory");
        return -1;
    }
    *s = (struct http_server){.loop = loop, .handler = h, .ctx = ctx, .open_handles = 2};
    uv_tcp_init(loop, &s->listener);
    uv_timer_init(loop, &s->sweep);
    s->listener.data = s->sweep.data = s;
    /* libuv reports most bind errors only from listen. */
    int rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    if (rc) {
        snprintf(err, errlen, "http: cannot listen on %s: %s", listen, uv_strerror(rc));
        http_stop(s); /* frees s once the loop has run the close callbacks */
        return -1;
    }
    uv_timer_start(&s->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    *out = s;
    return 0;
}

int http_port(const struct http_server *s)
{
    struct sockaddr_storage a;
    int len = sizeof a;
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&a, &len))
        return -1;
    return ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                         : ((struct sockaddr_in *)&a)->sin_port);
}

void http_stop(struct http_server *s)
{
    s->stopping = true;
    uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->sweep, on_server_handle_closed);
    for (struct conn *c = s->conns; c; c = c->next)
        conn_close(c);
}
