// remex-server: see `remex-server --help`.
#include "server/server_main.h"

int main(int argc, char** argv) { return remex::server::RunServer(argc, argv); }
