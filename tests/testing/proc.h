// Reading /proc for the tests: children, process groups, zombies, liveness.
#ifndef REMEX_TESTS_TESTING_PROC_H_
#define REMEX_TESTS_TESTING_PROC_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace remex::testing {

// One process, as /proc/PID/stat tells it.
struct ProcEntry {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgrp = 0;
  char state = '?';  // 'R', 'S', 'Z' (zombie), ...
};

// Every process on the machine (that this user may see).
std::vector<ProcEntry> AllProcesses();

// Every process whose parent is `parent`, zombies included.
std::vector<ProcEntry> ChildrenOf(pid_t parent);

// Live processes of process group `pgrp`; zombies do not count.
std::vector<pid_t> GroupMembers(pid_t pgrp);

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

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_PROC_H_
