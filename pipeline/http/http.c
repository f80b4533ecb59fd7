/* http.c: GET and HEAD over libuv, with HTTP/1.1 keep-alive, and health and
 * metrics still answered while clients hold every connection.
 *
 * Requests. A connection parses one request at a time (http-parser, paused
 * at the end of the request) and answers it. If http_should_keep_alive()
 * allows, it then resets the parser and goes on with the bytes received
 * after that request (pipelining) before reading more. Reading stops while
 * a response is written: the kernel holds what a client pipelines meanwhile.
 * Every response has a Content-Length and "Connection: keep-alive" or
 * "close". After a "close" response the server half-closes, then waits
 * briefly for the client to close first: closing a socket that still holds
 * unread request bytes would send a reset, which can destroy the response
 * before the client reads it.
 *
 * The cap (Kubernetes probes must not fail because clients hog the port).
 * At most max_connections connections are served. When one more arrives:
 *  1. the served connection idle longest between requests (no byte of a
 *     request received, not writing) is closed to make room: "evicted".
 *     HTTP clients must expect an idle keep-alive connection to close, so
 *     this costs its owner a reconnect, not an error;
 *  2. if none is idle, the newcomer is accepted "probe-only" while fewer
 *     than PROBE_RESERVE such exist: one request, answered only for the
 *     probe paths, 503 for any other, then closed;
 *  3. beyond that, it is accepted and answered 503 with Retry-After: 1 at
 *     once, then closed.
 * No client is dropped without an answer, and probes fail only once
 * PROBE_RESERVE probe connections are stuck at the same time. A connection
 * that is draining after its last response holds no slot: it only lingers.
 * Finding the idlest connection is a scan, done only when the cap is hit.
 *
 * Timeouts, checked by one sweep timer: idle_timeout_ms between requests
 * (and before the first one); REQUEST_TIMEOUT_MS from the first byte of a
 * request to its last, against clients that send slowly (slowloris), and
 * again to write the response; LINGER_MS while draining.
 *
 * Memory. An idle connection holds no buffer, about 700 bytes in all, so
 * the default 1024 connections cost under 1 MB. Every read lands in the
 * server's one read buffer: libuv hands a read to its callback before the
 * next read starts, and the callback parses it at once. The url is
 * allocated as it arrives (at most MAX_REQUEST); bytes pipelined behind a
 * request are copied out (at most READ_BUF) until that request is answered. */
#include "pipeline/http/http.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REQUEST 8192         /* request line, headers and body */
#define READ_BUF 8192
#define REQUEST_TIMEOUT_MS 10000 /* to receive a request, or to send the response */
#define LINGER_MS 2000           /* for the client to close after the last response */
#define SWEEP_MS 1000
#define PROBE_RESERVE 16         /* probe-only connections beyond the cap */
#define DEFAULT_MAX_CONNS 1024
#define DEFAULT_IDLE_MS 60000

static const char *const default_probe_paths[] = {"/healthz", "/readyz", "/metrics", NULL};

enum conn_state { IDLE, READING, WRITING, DRAINING };

/* What a connection counts against; closing and draining ones count against
 * nothing (SLOT_NONE), nor do those answered 503 at once. */
enum conn_slot { SLOT_NONE, SLOT_SERVED, SLOT_PROBE, N_SLOTS };

struct conn {
    uv_tcp_t tcp;
    struct http_server *srv;
    struct conn *prev, *next;
    http_parser parser;
    enum conn_state state;
    enum conn_slot slot;
    bool headers_done, complete, keep_alive;
    uint64_t idle_since, deadline;  /* in uv_now() time */
    size_t received;                /* bytes of the current request */
    char *url;                      /* of the current request; malloc'd, NUL-terminated */
    size_t url_len;
    char *pending;                  /* malloc'd: bytes received after the current request */
    size_t pending_off, pending_len;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    char *head, *body;              /* of the response being written */
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t sweep;
    http_handler handler;
    void *ctx;
    int max_conns;
    uint64_t idle_ms;
    const char *const *probe_paths;
    struct conn *conns;
    int n_slot[N_SLOTS];            /* open (not closing) connections by slot */
    uint64_t rejected, evicted;
    int open_handles;               /* the server is freed when the last one closes */
    bool stopping;
    char rbuf[READ_BUF];            /* every read lands here: see the top of the file */
};

static void respond(struct conn *c, int status, const char *type, char *body, size_t len,
                    bool head_only, const char *extra_headers);
static size_t conn_parse(struct conn *c, const char *data, size_t len);

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
    free(c->url);
    free(c->pending);
    free(c->head);
    free(c->body);
    free(c);
    handle_closed(s);
}

/* A closing connection counts nowhere, and so is never evicted. */
static void conn_close(struct conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    c->srv->n_slot[c->slot]--;
    c->slot = SLOT_NONE;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void conn_set_slot(struct conn *c, enum conn_slot slot)
{
    c->srv->n_slot[c->slot]--;
    c->srv->n_slot[slot]++;
    c->slot = slot;
}

/* ---- requests ----------------------------------------------------------- */

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->url_len + len > MAX_REQUEST)
        return 1;
    char *url = realloc(c->url, c->url_len + len + 1);
    if (!url)
        return 1;
    memcpy(url + c->url_len, at, len);
    c->url = url;
    c->url_len += len;
    url[c->url_len] = '\0';
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    ((struct conn *)p->data)->headers_done = true;
    return 0;
}

/* Pausing stops the parser at the end of the request, so that the bytes
 * after it are left for the next one. The keep-alive verdict is taken now,
 * while the parser still holds this request's version and headers. */
static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    c->complete = true;
    c->keep_alive = http_should_keep_alive(p);
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_url = on_url,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

static void request_reset(struct conn *c)
{
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    free(c->url);
    c->url = NULL;
    c->url_len = c->received = 0;
    c->headers_done = c->complete = c->keep_alive = false;
}

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

/* The server's own answers: the body is the reason. A 503 from here always
 * means overload, hence Retry-After. */
static void respond_error(struct conn *c, int status)
{
    char *body;
    int len = asprintf(&body, "%s\n", reason(status));
    if (len < 0) {
        conn_close(c);
        return;
    }
    const char *extra = status == 405   ? "Allow: GET, HEAD\r\n"
                        : status == 503 ? "Retry-After: 1\r\n"
                                        : "";
    bool head_only = c->complete && c->parser.method == HTTP_HEAD;
    respond(c, status, "text/plain; charset=utf-8", body, (size_t)len, head_only, extra);
}

/* For a request that cannot be parsed to its end: what follows it in the
 * stream is not a request, so the connection closes after the answer. */
static void respond_fatal(struct conn *c, int status)
{
    c->keep_alive = false;
    respond_error(c, status);
}

static void respond_overloaded(struct conn *c)
{
    c->srv->rejected++;
    respond_fatal(c, 503);
}

/* The path of the request target, without query or fragment, terminated in
 * place in c->url; NULL if the target has none. */
static const char *url_path(struct conn *c)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (!c->url || http_parser_parse_url(c->url, c->url_len, 0, &u) ||
        !(u.field_set & (1 << UF_PATH)))
        return NULL;
    char *path = c->url + u.field_data[UF_PATH].off;
    path[u.field_data[UF_PATH].len] = '\0';
    return path;
}

static bool is_probe_path(const struct http_server *s, const char *path)
{
    for (const char *const *p = s->probe_paths; *p; p++)
        if (!strcmp(*p, path))
            return true;
    return false;
}

static void dispatch(struct conn *c)
{
    struct http_server *s = c->srv;
    enum http_method m = c->parser.method;
    const char *path = url_path(c);
    if (c->slot == SLOT_PROBE && (!path || !is_probe_path(s, path))) {
        respond_overloaded(c);
    } else if (m != HTTP_GET && m != HTTP_HEAD) {
        respond_error(c, 405);
    } else if (!path) {
        respond_error(c, 400);
    } else {
        struct http_response r = {.status = 500, .content_type = "text/plain; charset=utf-8"};
        s->handler(s->ctx, http_method_str(m), path, &r);
        respond(c, r.status, r.content_type, r.body, r.body_len, m == HTTP_HEAD, "");
    }
}

/* Parses received bytes, at most up to MAX_REQUEST for the request, and
 * answers the request once it is complete or broken. Returns the bytes that
 * belong to it; the rest are the next request's. */
static size_t conn_parse(struct conn *c, const char *data, size_t len)
{
    if (c->state == IDLE) {
        c->state = READING;
        c->deadline = uv_now(c->srv->loop) + REQUEST_TIMEOUT_MS;
    }
    size_t room = MAX_REQUEST - c->received;
    size_t n = len < room ? len : room;
    /* A length of 0 would tell the parser that the stream has ended. */
    size_t used = n ? http_parser_execute(&c->parser, &parser_settings, data, n) : 0;
    c->received += used;
    if (c->complete)
        dispatch(c);
    else if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK)
        respond_fatal(c, 400);
    else if (used < len) /* all it was given, and more is there: too large */
        respond_fatal(c, c->headers_done ? 413 : 431);
    return used;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    *buf = uv_buf_init(c->srv->rbuf, sizeof c->srv->rbuf);
}

/* Keeps what follows the request being answered: buf is the server's. */
static void keep_pending(struct conn *c, const char *data, size_t len)
{
    c->pending = malloc(len);
    if (!c->pending) {
        c->keep_alive = false; /* close after this response rather than lose requests */
        return;
    }
    memcpy(c->pending, data, len);
    c->pending_off = 0;
    c->pending_len = len;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    /* While draining, bytes after the last request are read and dropped. */
    if (nread == 0 || c->state == DRAINING)
        return;
    size_t used = conn_parse(c, buf->base, (size_t)nread);
    if (used < (size_t)nread && c->keep_alive && c->state == WRITING &&
        !uv_is_closing((uv_handle_t *)&c->tcp))
        keep_pending(c, buf->base + used, (size_t)nread - used);
}

static void conn_read(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp) &&
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
        conn_close(c);
}

/* After a keep-alive response: the next request, first from the bytes
 * already received, then from the socket. */
static void conn_next_request(struct conn *c)
{
    request_reset(c);
    c->state = IDLE;
    c->idle_since = uv_now(c->srv->loop);
    c->deadline = c->idle_since + c->srv->idle_ms;
    if (c->pending) {
        c->pending_off += conn_parse(c, c->pending + c->pending_off,
                                     c->pending_len - c->pending_off);
        if (c->pending_off == c->pending_len) {
            free(c->pending);
            c->pending = NULL;
        }
        if (c->state == WRITING)
            return; /* answering it; reading resumes after that */
    }
    conn_read(c);
}

/* ---- responses ---------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    if (status < 0)
        conn_close(req->data);
}

/* Half-closes after the last response and waits for the client to close. */
static void conn_drain(struct conn *c)
{
    conn_set_slot(c, SLOT_NONE);
    c->state = DRAINING;
    c->deadline = uv_now(c->srv->loop) + LINGER_MS;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown))
        conn_close(c);
    else
        conn_read(c);
}

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    free(c->head);
    free(c->body);
    c->head = c->body = NULL;
    if (status < 0 || uv_is_closing((uv_handle_t *)&c->tcp))
        conn_close(c);
    else if (c->keep_alive)
        conn_next_request(c);
    else
        conn_drain(c);
}

/* Takes ownership of body. Probe-only connections serve one request. */
static void respond(struct conn *c, int status, const char *type, char *body, size_t len,
                    bool head_only, const char *extra_headers)
{
    char *head;
    c->state = WRITING;
    c->keep_alive = c->keep_alive && c->slot == SLOT_SERVED;
    int n = asprintf(&head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: %s\r\n\r\n",
                     status, reason(status), type, len, extra_headers,
                     c->keep_alive ? "keep-alive" : "close");
    if (n < 0) {
        free(body);
        conn_close(c);
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)n), uv_buf_init(body, (unsigned)len)};
    c->head = head;
    c->body = body;
    c->deadline = uv_now(c->srv->loop) + REQUEST_TIMEOUT_MS;
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, head_only || !len ? 1 : 2,
                 on_written))
        conn_close(c); /* on_conn_closed frees head and body */
}

/* ---- the server --------------------------------------------------------- */

/* The served connection idle longest, or NULL. Ties go to the one accepted
 * first (the list is newest first). */
static struct conn *idlest(struct http_server *s)
{
    struct conn *best = NULL;
    for (struct conn *c = s->conns; c; c = c->next)
        if (c->slot == SLOT_SERVED && c->state == IDLE &&
            (!best || c->idle_since <= best->idle_since))
            best = c;
    return best;
}

/* Gives an accepted connection a slot: see "The cap" at the top. */
static void conn_admit(struct conn *c)
{
    struct http_server *s = c->srv;
    struct conn *old;
    uint64_t now = uv_now(s->loop);
    request_reset(c);
    c->state = IDLE;
    c->idle_since = now;
    if (s->n_slot[SLOT_SERVED] >= s->max_conns && (old = idlest(s))) {
        s->evicted++;
        conn_close(old);
    }
    if (s->n_slot[SLOT_SERVED] < s->max_conns) {
        conn_set_slot(c, SLOT_SERVED);
        c->deadline = now + s->idle_ms;
    } else if (s->n_slot[SLOT_PROBE] < PROBE_RESERVE) {
        conn_set_slot(c, SLOT_PROBE);
        c->deadline = now + REQUEST_TIMEOUT_MS; /* the reserve is scarce: no idling */
    } else {
        respond_overloaded(c);
        return;
    }
    conn_read(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct http_server *s = listener->data;
    struct conn *c = status < 0 ? NULL : calloc(1, sizeof *c);
    if (!c)
        return;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->srv = s;
    c->slot = SLOT_NONE;
    s->n_slot[SLOT_NONE]++;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->open_handles++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp))
        conn_close(c);
    else
        conn_admit(c);
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

static void apply_options(struct http_server *s, const struct http_options *o)
{
    s->max_conns = o && o->max_connections > 0 ? o->max_connections : DEFAULT_MAX_CONNS;
    s->idle_ms = o && o->idle_timeout_ms ? o->idle_timeout_ms : DEFAULT_IDLE_MS;
    if (s->idle_ms > UINT64_MAX / 2)
        s->idle_ms = UINT64_MAX / 2; /* "forever", without overflowing uv_now() + idle_ms */
    s->probe_paths = o && o->probe_paths ? o->probe_paths : default_probe_paths;
}

int http_start(uv_loop_t *loop, const char *listen, const struct http_options *opts,
               http_handler h, void *ctx, struct http_server **out, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    if (parse_listen(listen, &addr, err, errlen))
        return -1;
    struct http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "http: out of memory");
        return -1;
    }
    s->loop = loop;
    s->handler = h;
    s->ctx = ctx;
    s->open_handles = 2;
    apply_options(s, opts);
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
    /* Often enough that a short idle timeout is honoured roughly. */
    uint64_t period = s->idle_ms < SWEEP_MS ? s->idle_ms : SWEEP_MS;
    uv_timer_start(&s->sweep, on_sweep, period, period);
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

void http_stats(const struct http_server *s, struct http_stats *out)
{
    int open = s->n_slot[SLOT_NONE] + s->n_slot[SLOT_SERVED] + s->n_slot[SLOT_PROBE];
    *out = (struct http_stats){
        .connections = (uint64_t)open, .rejected = s->rejected, .evicted = s->evicted};
}

void http_stop(struct http_server *s)
{
    s->stopping = true;
    uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->sweep, on_server_handle_closed);
    for (struct conn *c = s->conns; c; c = c->next)
        conn_close(c);
}
