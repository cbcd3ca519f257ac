#include "common/ids.h"

#include <atomic>
#include <cstdint>
#include <random>

namespace remex::common {
namespace {

constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuv";
constexpr int kPrefixDigits = 5;
constexpr int kSequenceDigits = kTaskIdSize - kPrefixDigits;

uint64_t InstancePrefix() {
  static const uint64_t prefix = [] {
    std::random_device device;
    return static_cast<uint64_t>(device()) & ((uint64_t{1} << 25) - 1);
  }();
  return prefix;
}

// Writes `value` as `digits` base-32 digits ending just before `end`.
void PutDigits(uint64_t value, int digits, char* end) {
  for (int i = 0; i < digits; ++i) {
    *--end = kDigits[value & 31];
    value >>= 5;
  }
}

}  // namespace

std::string NewTaskId() {
  static std::atomic<uint64_t> next_sequence{1};
  // 2^50 ids per process before the sequence wraps: decades at 10^6/s.
  const uint64_t sequence =
      next_sequence.fetch_add(1, std::memory_order_relaxed);
  std::string id(kTaskIdSize, '0');
  PutDigits(InstancePrefix(), kPrefixDigits, id.data() + kPrefixDigits);
  PutDigits(sequence, kSequenceDigits, id.data() + kTaskIdSize);
  return id;
}

bool IsWellFormedTaskId(const std::string& id) {
  if (id.size() != kTaskIdSize) return false;
  for (char c : id) {
    const bool digit = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'v');
    if (!digit) return false;
  }
  return true;
}

}  // namespace remex::common
