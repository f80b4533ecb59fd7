/* users_store.h: short ways to operators/users.h's stores for the tests
 * that drive users and items directly. */
#ifndef EDDY_TEST_USERS_STORE_H
#define EDDY_TEST_USERS_STORE_H

#include "operators/users.h"
#include "state/state.h"

static inline struct state_store *users_of(struct eddy_state *st)
{
    return state_store(st, &users_store);
}

static inline struct state_store *items_of(struct eddy_state *st)
{
    return state_store(st, &items_store);
}

static inline struct user_state *user_get(struct eddy_state *st, int32_t partition,
                                          struct eddy_str id, bool create)
{
    return state_get_in(users_of(st), partition, id, create);
}

static inline void user_dirty(struct eddy_state *st, struct user_state *u)
{
    state_dirty(users_of(st), u);
}

#endif
