// A status code from a number that came over a wire (a v1.TaskError, the
// worker protocol): the one place where such a number becomes an
// absl::StatusCode.
#ifndef REMEX_COMMON_STATUS_CODE_H_
#define REMEX_COMMON_STATUS_CODE_H_

#include <cstdint>

#include "absl/status/status.h"

namespace remex::common {

// The code of google.rpc code number `number` (absl and gRPC share them); a
// number that is no code is UNKNOWN, so a peer cannot forge an invalid
// absl::StatusCode.
absl::StatusCode CodeFromNumber(int32_t number);

}  // namespace remex::common

#endif  // REMEX_COMMON_STATUS_CODE_H_
