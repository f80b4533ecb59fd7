/* params.h: how an operator describes the keys of its configuration
 * section, so that the pipeline can parse, check and document them without
 * knowing the operator's parameter struct.
 *
 * Each entry names one field of the operator's own parameter struct by its
 * offset. The pipeline fills a zeroed struct from the defaults, the config
 * file and the EDDY_SECTION_KEY environment, in that order, and hands it to
 * the operator's create(). */
#ifndef EDDY_PARAMS_H
#define EDDY_PARAMS_H

#include <stddef.h>

enum eddy_param_type {
    PARAM_INT,            /* int */
    PARAM_INT64,          /* int64_t */
    PARAM_UINT64,         /* uint64_t; any value, min and max unused */
    PARAM_FLOAT,          /* float */
    PARAM_DOUBLE,         /* double */
    /* "0.5, 1, 2": 1 to max_count doubles, each > 0, into the array at off;
     * their number goes to the int at count_off. min and max unused. */
    PARAM_POSITIVE_LIST,
    /* One of the words in choices, stored as its index (an int). min and
     * max unused. */
    PARAM_CHOICE,
    PARAM_TYPES
};

struct eddy_param {
    const char *key;
    enum eddy_param_type type;
    const char *def;      /* the default, as text: it is parsed like a configured value */
    size_t off;           /* of the field in the operator's parameter struct */
    double min, max;      /* inclusive range of a number; min == max: none */
    const char *help;     /* one line, no final period */
    size_t count_off;     /* PARAM_POSITIVE_LIST only */
    int max_count;        /* PARAM_POSITIVE_LIST only */
    const char *const *choices; /* PARAM_CHOICE only: NULL-terminated */
};

#endif
