#include "common/status_code.h"

namespace remex::common {

absl::StatusCode CodeFromNumber(int32_t number) {
  constexpr int32_t kLast =
      static_cast<int32_t>(absl::StatusCode::kUnauthenticated);
  if (number < 0 || number > kLast) return absl::StatusCode::kUnknown;
  return static_cast<absl::StatusCode>(number);
}

}  // namespace remex::common
