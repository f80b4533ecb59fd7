/* users.h: the users and items that embeddings learns and recommend reads.
 *
 * Two stores, declared by the embeddings operator (it creates and updates
 * both) and read and written by recommend, which keeps its last refresh
 * time in the user's value:
 *  - users_store: a partitioned keyed store (key: clicks partition, user
 *    id) of struct user_state, whose layout and encoding live here;
 *  - items_store: a dense store of item vectors, one row each in arrival
 *    order, scored with sgemm. A user's seen set holds item rows.
 * The state (state/state.h) caches, writes and checkpoints them without
 * knowing what they hold. */
#ifndef EDDY_USERS_H
#define EDDY_USERS_H

#include <stdbool.h>
#include <stdint.h>

#include "state/state.h"

struct user_state {
    int64_t last_refresh_ms;  /* recommend's: event time of the last published
                                 recommendations; INT64_MIN if never */
    int64_t last_event_ms;    /* event time of the last click event applied */
    uint64_t n_events;
    uint32_t *seen;           /* sorted item rows the user interacted with */
    uint32_t n_seen, seen_cap;
    bool is_new;              /* made by this lookup, vector not initialised yet */
    float vec[];              /* the state's dim floats */
};

extern const struct state_codec users_store;
extern const struct state_codec items_store;

/* Adds an item row to the user's seen set; returns false if already there.
 * Mark the user dirty after: the set may have grown. */
bool user_seen_add(struct user_state *u, uint32_t row);
bool user_has_seen(const struct user_state *u, uint32_t row);

#endif
