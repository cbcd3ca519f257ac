#include "common/ids.h"

#include <atomic>
#include <cstdint>
#include <random>

#include "absl/strings/str_format.h"

namespace remex::common {
namespace {

uint32_t InstancePrefix() {
  static const uint32_t prefix = [] {
    std::random_device device;
    return static_cast<uint32_t>(device());
  }();
  return prefix;
}

}  // namespace

std::string NewTaskId() {
  static std::atomic<uint64_t> next_sequence{1};
  const uint64_t sequence =
      next_sequence.fetch_add(1, std::memory_order_relaxed);
  return absl::StrFormat("%08x%016x", InstancePrefix(), sequence);
}

bool IsWellFormedTaskId(const std::string& id) {
  if (id.size() != 24) return false;
  for (char c : id) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!hex) return false;
  }
  return true;
}

}  // namespace remex::common
