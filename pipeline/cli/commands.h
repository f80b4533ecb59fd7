/* commands.h: eddy's commands, one file each (pipeline/cli/cmd_*.c). argv[0]
 * is the command's name; each returns the exit code: 0 ok, 1 failed, 2 a
 * usage error (eddy run also 3 and 4: see runtime.h). */
#ifndef EDDY_COMMANDS_H
#define EDDY_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_broker(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_state(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_replay(int argc, char **argv);

#endif
