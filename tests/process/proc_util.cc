#include "tests/process/proc_util.h"

#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace remex::process::testing {
namespace {

// Parses /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces
// and parentheses, so read from the last ')'.
bool ReadStat(pid_t pid, char& state, pid_t& ppid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(file)),
                   std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(text.substr(close + 1));
  rest >> state >> ppid;
  return static_cast<bool>(rest);
}

}  // namespace

std::vector<ProcEntry> ChildrenOf(pid_t parent) {
  std::vector<ProcEntry> children;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return children;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0') continue;
    char state = '?';
    pid_t ppid = 0;
    if (ReadStat(static_cast<pid_t>(pid), state, ppid) && ppid == parent) {
      children.push_back({static_cast<pid_t>(pid), state});
    }
  }
  closedir(dir);
  return children;
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
  char state = '?';
  pid_t ppid = 0;
  return ReadStat(pid, state, ppid) && state != 'Z' && state != 'X';
}

}  // namespace remex::process::testing
