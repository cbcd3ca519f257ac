#include "server/connection_guard.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace remex::server {
namespace {

using Accept4 = int (*)(int, sockaddr*, socklen_t*, int);

// 0: not installed; every accept4 passes through.
std::atomic<int64_t> g_reserve{0};
std::atomic<int64_t> g_refused{0};
// A descriptor of /dev/null held to be freed when accept4 finds none: -1
// when there is none.
std::atomic<int> g_spare{-1};

Accept4 RealAccept4() {
  static const Accept4 real =
      reinterpret_cast<Accept4>(dlsym(RTLD_NEXT, "accept4"));
  return real;
}

int OpenSpare() { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

// accept4 failed for want of fds: accepts one waiting connection with the
// spare's fd and closes it. False if there was no spare, or nothing
// waited.
bool RefuseWithSpare(int sockfd) {
  const int spare = g_spare.exchange(-1);
  if (spare < 0) return false;
  close(spare);
  const int fd = RealAccept4()(sockfd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) close(fd);
  // Another thread may take the freed fd first: then there is no spare
  // until a later Install.
  if (const int again = OpenSpare(); again >= 0) g_spare.store(again);
  return fd >= 0;
}

// The soft limit of open files now (read each time: an operator may
// change it with prlimit); 0 if it cannot be read.
int64_t SoftLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  return static_cast<int64_t>(
      std::min<rlim_t>(limit.rlim_cur, rlim_t{1} << 30));
}

// The reserve in force under `soft`: at most half of it. 0 when not
// installed.
int64_t ReserveUnder(int64_t soft) {
  return std::min(g_reserve.load(std::memory_order_relaxed), soft / 2);
}

// The fd number connections stay below: the soft limit less the reserve.
// 0 when not installed.
int64_t Ceiling() {
  const int64_t soft = SoftLimit();
  const int64_t reserve = ReserveUnder(soft);
  return reserve == 0 ? 0 : soft - reserve;
}

}  // namespace

void InstallConnectionGuard(int64_t reserve) {
  if (g_spare.load() < 0) g_spare.store(OpenSpare());
  g_reserve.store(std::max<int64_t>(16, reserve));
}

ConnectionGuardStats GetConnectionGuardStats() {
  const int64_t soft = SoftLimit();
  const int64_t reserve = ReserveUnder(soft);
  return ConnectionGuardStats{.reserve = reserve,
                              .ceiling = reserve == 0 ? 0 : soft - reserve,
                              .refused = g_refused.load()};
}

int64_t DefaultFdReserve(int64_t workers) { return 64 + 8 * workers; }

int64_t CountEstablishedConnections(int port) {
  int64_t count = 0;
  bool read_any = false;
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream table(path);
    if (!table) continue;
    read_any = true;
    std::string line;
    std::getline(table, line);  // the header
    while (std::getline(table, line)) {
      // "  0: 0100007F:C350 0100007F:D4A2 01 ...": local, remote, state.
      const std::vector<absl::string_view> fields =
          absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (fields.size() < 4 || fields[3] != "01") continue;
      const size_t colon = fields[1].rfind(':');
      uint32_t local_port = 0;
      if (colon != absl::string_view::npos &&
          absl::SimpleHexAtoi(fields[1].substr(colon + 1), &local_port) &&
          static_cast<int>(local_port) == port) {
        ++count;
      }
    }
  }
  return read_any ? count : -1;
}

}  // namespace remex::server

// Interposes libc's accept4 for the whole process (see connection_guard.h).
// gRPC accepts with accept4; nothing else here does.
extern "C" int accept4(int sockfd, sockaddr* addr, socklen_t* addrlen,
                       int flags) {
  using remex::server::g_refused;
  const int64_t ceiling = remex::server::Ceiling();
  while (true) {
    const int fd = remex::server::RealAccept4()(sockfd, addr, addrlen, flags);
    if (ceiling == 0) return fd;
    if (fd < 0) {
      if (errno != EMFILE && errno != ENFILE) return fd;
      if (remex::server::RefuseWithSpare(sockfd)) {
        g_refused.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      errno = EAGAIN;  // gRPC waits for the next connection, alive
      return -1;
    }
    if (fd < ceiling) return fd;
    close(fd);
    g_refused.fetch_add(1, std::memory_order_relaxed);
  }
}
