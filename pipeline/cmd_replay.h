/* cmd_replay.h: `eddy replay`, event logs through the operators. */
#ifndef EDDY_CMD_REPLAY_H
#define EDDY_CMD_REPLAY_H

/* argv[0] is "replay"; returns the exit code (0 ok, 1 failed, 2 usage). */
int cmd_replay(int argc, char **argv);

#endif
