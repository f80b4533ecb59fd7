/* cmd_import.h: `eddy import`, public data sets to Avro event logs. */
#ifndef EDDY_CMD_IMPORT_H
#define EDDY_CMD_IMPORT_H

/* argv[0] is "import"; returns the exit code (0 ok, 1 failed, 2 usage
 * error). */
int cmd_import(int argc, char **argv);

#endif
