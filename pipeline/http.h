/* http.h: a small HTTP/1.1 GET server on libuv (parsing by http-parser).
 * The handler runs on the loop thread and fills a response; the server
 * frees resp->body after sending. Binds where told: 127.0.0.1 by default. */
#ifndef EDDY_HTTP_H
#define EDDY_HTTP_H

#include <stddef.h>
#include <uv.h>

struct http_response {
    int status;
    const char *content_type;
    char *body;        /* malloc'd; the server frees it */
    size_t body_len;
};

typedef void (*http_handler)(void *ctx, const char *method, const char *path,
                             struct http_response *resp);

struct http_server;

/* listen is "host:port", host a numeric IPv4 address or a bracketed IPv6 one
 * ("[::1]:9464"). On failure, run the loop afterwards to release handles. */
int http_start(uv_loop_t *loop, const char *listen, http_handler h, void *ctx,
               struct http_server **out, char *err, size_t errlen);
/* The port listened on (the one picked when listen asked for port 0), or -1. */
int http_port(const struct http_server *s);
/* Closes the listener and every connection; frees the server once libuv has
 * closed the handles (run the loop afterwards). */
void http_stop(struct http_server *s);

#endif
