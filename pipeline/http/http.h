/* http.h: a small HTTP/1.1 GET server on libuv (parsing by http-parser),
 * with keep-alive, that keeps answering probes under connection pressure.
 * The handler runs on the loop thread and fills a response; the server
 * frees resp->body after sending. Binds where told: 127.0.0.1 by default. */
#ifndef EDDY_HTTP_H
#define EDDY_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct http_response {
    int status;
    const char *content_type;
    char *body;        /* malloc'd; the server frees it */
    size_t body_len;
};

typedef void (*http_handler)(void *ctx, const char *method, const char *path,
                             struct http_response *resp);

/* Zero fields (or NULL options) mean the default. */
struct http_options {
    int max_connections;       /* served connections at once; default 1024 */
    uint64_t idle_timeout_ms;  /* between requests; default 60000 */
    /* Paths still served once the cap is reached, NULL-terminated; default
     * {"/healthz", "/readyz", "/metrics", NULL}. Not copied: the array and
     * its strings must outlive the server. */
    const char *const *probe_paths;
};

/* Counters the caller may export; read on the loop thread. */
struct http_stats {
    uint64_t connections;   /* open now, of every kind */
    uint64_t rejected;      /* answered 503 because of the connection cap */
    uint64_t evicted;       /* idle connections closed to make room for new ones */
};

struct http_server;

/* listen is "host:port", host a numeric IPv4 address or a bracketed IPv6 one
 * ("[::1]:9464"). opts may be NULL; it is not kept (but see probe_paths).
 * On failure, run the loop afterwards to release handles. */
int http_start(uv_loop_t *loop, const char *listen, const struct http_options *opts,
               http_handler h, void *ctx, struct http_server **out, char *err, size_t errlen);
/* The port listened on (the one picked when listen asked for port 0), or -1. */
int http_port(const struct http_server *s);
void http_stats(const struct http_server *s, struct http_stats *out);
/* Closes the listener and every connection; frees the server once libuv has
 * closed the handles (run the loop afterwards). */
void http_stop(struct http_server *s);

#endif
