// Shell completion for the `remex` tool, generated from its CLI11 command
// line so that it always knows every command and flag.
#ifndef REMEX_CLI_COMPLETION_H_
#define REMEX_CLI_COMPLETION_H_

#include <map>
#include <string>

#include "CLI/CLI.hpp"

namespace remex::cli {

// A bash completion script for `app` (program name `app.get_name()`): it
// completes commands, the flags of the command on the line (and the global
// flags), and flag values: `values` maps a flag ("--state") to its words
// ("QUEUED RUNNING ..."), or to "@file" for file names, or to "@functions"
// for the functions of the server (asked with `PROGRAM functions -o id` and
// the connection flags of the line). The argument of "submit" completes as
// "@functions"; arguments named ID as the ids of the server's tasks (the
// first 1000 that `PROGRAM list -o id` prints).
std::string BashCompletion(const CLI::App& app,
                           const std::map<std::string, std::string>& values);

}  // namespace remex::cli

#endif  // REMEX_CLI_COMPLETION_H_
