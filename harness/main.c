/* main.c — the scbench executable: hands argv to the command table. The only place that
 * decides the process exit status. */
#include "harness/cli.h"

int main(int argc, char **argv)
{
    return scb_cli_main(argc, argv);
}
