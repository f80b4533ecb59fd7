/* demo.h: `eddy demo`: an embedded mock broker, the generator on a second
 * thread, and the real pipeline, printing recommendations and budget
 * decisions for a few users and campaigns as they change. */
#ifndef EDDY_DEMO_H
#define EDDY_DEMO_H

#include <stdbool.h>
#include <stdint.h>

struct demo_options {
    uint64_t events;
    double rate;
    int max_seconds;
    bool fault;        /* take the output broker down for a while */
};

int demo_run(const struct demo_options *o);

#endif
