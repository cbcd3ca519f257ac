#include "common/ids.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace remex::common {
namespace {

constexpr size_t kDigitCount = sizeof(kTaskIdDigits) - 1;
static_assert(kDigitCount == 62);
// Bytes at or above this are rejected, so that `byte % kDigitCount` is
// uniform: 248 = 4 * 62, and 3% of the bytes are dropped.
constexpr unsigned kAcceptBelow = 256 - 256 % kDigitCount;
// An id takes kTaskIdSize / (248 / 256) = 21.7 bytes on average.
constexpr size_t kBlockBytes = 2048;

[[noreturn]] void DieWithoutRandomness(const char* what, int error) {
  std::fprintf(stderr, "remex: cannot make task ids: %s: %s\n", what,
               std::strerror(error));
  std::abort();
}

// Fills `size` bytes from /dev/urandom, for a kernel or a sandbox without
// getrandom(2).
void ReadDevUrandom(unsigned char* bytes, size_t size) {
  const int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) DieWithoutRandomness("open /dev/urandom", errno);
  while (size > 0) {
    const ssize_t got = read(fd, bytes, size);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) DieWithoutRandomness("read /dev/urandom", errno);
    bytes += got;
    size -= static_cast<size_t>(got);
  }
  close(fd);
}

// Fills `size` bytes from the kernel CSPRNG. getrandom(2) blocks only until
// the pool is first seeded at boot, and may return short when a signal
// interrupts a read of more than 256 bytes.
void FillRandom(unsigned char* bytes, size_t size) {
  while (size > 0) {
    const ssize_t got = getrandom(bytes, size, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOSYS || errno == EPERM) return ReadDevUrandom(bytes, size);
      DieWithoutRandomness("getrandom", errno);
    }
    bytes += got;
    size -= static_cast<size_t>(got);
  }
}

// A thread's random bytes not yet used. Bytes are wiped as they are used.
struct RandomBlock {
  unsigned char bytes[kBlockBytes];
  size_t next = kBlockBytes;  // all used: refill before the first byte

  unsigned char Take() {
    if (next == kBlockBytes) {
      FillRandom(bytes, kBlockBytes);
      next = 0;
    }
    const unsigned char byte = bytes[next];
    bytes[next++] = 0;
    return byte;
  }
  void Drop() {
    std::memset(bytes, 0, sizeof(bytes));
    next = kBlockBytes;
  }
};

thread_local RandomBlock random_block;

// In a forked child only the thread that forked lives on: its block is the
// parent's, whose next bytes the parent will use too.
void DropBlockInChild() { random_block.Drop(); }

void RegisterForkHandler() {
  static std::once_flag once;
  std::call_once(once,
                 [] { pthread_atfork(nullptr, nullptr, &DropBlockInChild); });
}

bool IsDigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
         (c >= 'a' && c <= 'z');
}

}  // namespace

std::string NewTaskId() {
  RegisterForkHandler();
  std::string id(kTaskIdSize, '0');
  RandomBlock& block = random_block;
  for (char& digit : id) {
    unsigned byte;
    do {
      byte = block.Take();
    } while (byte >= kAcceptBelow);
    digit = kTaskIdDigits[byte % kDigitCount];
  }
  return id;
}

bool IsWellFormedTaskId(const std::string& id) {
  if (id.size() != kTaskIdSize) return false;
  for (char c : id) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

}  // namespace remex::common
