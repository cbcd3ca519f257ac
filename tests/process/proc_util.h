// Reading /proc for the process pool tests: children, zombies, liveness.
#ifndef REMEX_TESTS_PROCESS_PROC_UTIL_H_
#define REMEX_TESTS_PROCESS_PROC_UTIL_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace remex::process::testing {

struct ProcEntry {
  pid_t pid = 0;
  char state = '?';  // 'R', 'S', 'Z' (zombie), ...
};

// Every process whose parent is `parent`, zombies included.
std::vector<ProcEntry> ChildrenOf(pid_t parent);

// True if `pid` exists and is not a zombie.
bool IsAlive(pid_t pid);

// Live processes (zombies excluded) with an argument that contains `text`
// (for a distinctive argument given to a command, to find exactly its
// processes).
std::vector<pid_t> ProcessesWithArgument(const std::string& text);

// In sanitizer builds, makes child processes started from now on die of
// SIGSEGV as uninstrumented ones do (ASan would report it and exit 1), so
// that tests see the same worker deaths in every build. No-op otherwise.
void LetSegvKillChildren();

}  // namespace remex::process::testing

#endif  // REMEX_TESTS_PROCESS_PROC_UTIL_H_
