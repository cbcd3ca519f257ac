#include "tests/testing/proc.h"

#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace remex::testing {
namespace {

// Parses /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold
// spaces and parentheses, so read from the last ')'.
std::optional<ProcEntry> ReadStat(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(file)),
                   std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(text.substr(close + 1));
  ProcEntry entry{.pid = pid};
  rest >> entry.state >> entry.ppid >> entry.pgrp;
  if (!rest) return std::nullopt;
  return entry;
}

}  // namespace

std::vector<ProcEntry> AllProcesses() {
  std::vector<ProcEntry> processes;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return processes;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0') continue;
    if (std::optional<ProcEntry> stat = ReadStat(static_cast<pid_t>(pid))) {
      processes.push_back(*stat);
    }
  }
  closedir(dir);
  return processes;
}

std::vector<ProcEntry> ChildrenOf(pid_t parent) {
  std::vector<ProcEntry> children;
  for (const ProcEntry& entry : AllProcesses()) {
    if (entry.ppid == parent) children.push_back(entry);
  }
  return children;
}

std::vector<pid_t> GroupMembers(pid_t pgrp) {
  std::vector<pid_t> members;
  for (const ProcEntry& entry : AllProcesses()) {
    if (entry.pgrp == pgrp && entry.state != 'Z') members.push_back(entry.pid);
  }
  return members;
}

void LetSegvKillChildren() {
#if defined(__SANITIZE_ADDRESS__)
  const char* options = getenv("ASAN_OPTIONS");
  std::string value = options != nullptr ? options : "";
  if (value.find("handle_segv=0") != std::string::npos) return;
  if (!value.empty()) value += ":";
  value += "handle_segv=0";
  setenv("ASAN_OPTIONS", value.c_str(), 1);
#endif
}

std::vector<pid_t> ProcessesWithArgument(const std::string& text) {
  std::vector<pid_t> found;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return found;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0') continue;
    std::ifstream file(std::string("/proc/") + entry->d_name + "/cmdline");
    for (std::string arg; std::getline(file, arg, '\0');) {
      if (arg.find(text) == std::string::npos) continue;
      if (IsAlive(static_cast<pid_t>(pid))) {
        found.push_back(static_cast<pid_t>(pid));
      }
      break;
    }
  }
  closedir(dir);
  return found;
}

bool IsAlive(pid_t pid) {
  const std::optional<ProcEntry> stat = ReadStat(pid);
  return stat.has_value() && stat->state != 'Z' && stat->state != 'X';
}

}  // namespace remex::testing
