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

/* listen is "host:port". */
int http_start(uv_loop_t *loop, const char *listen, http_handler h, void *ctx,
               struct http_server **out, char *err, size_t errlen);
/* Closes the listener and every connection; frees the server once libuv has
 * closed the handles (run the loop afterwards). */
void http_stop(struct http_server *s);

#endif
