/* cmd_state.h: `eddy state`, inspection of a state directory. */
#ifndef EDDY_CMD_STATE_H
#define EDDY_CMD_STATE_H

/* argv[0] is "state"; returns the exit code (0 ok, 1 failed or not found,
 * 2 usage error). */
int cmd_state(int argc, char **argv);

#endif
