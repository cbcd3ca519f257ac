// Quoting of client-given strings (task ids, function and pool names) in
// error messages, bounded so that an error never echoes unbounded input.
#ifndef REMEX_COMMON_QUOTE_H_
#define REMEX_COMMON_QUOTE_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace remex::common {

// Bytes of a quoted string that an error message shows at most.
inline constexpr size_t kMaxQuotedBytes = 64;

// `text` in single quotes; longer than kMaxQuotedBytes, its first bytes (cut
// at a UTF-8 character boundary) then "…' (N bytes)". The result is valid
// UTF-8 whatever `text` holds: bytes that are not UTF-8 are shown as U+FFFD
// (a client that reads the message as UTF-8 must not fail on it).
std::string Quote(absl::string_view text);

}  // namespace remex::common

#endif  // REMEX_COMMON_QUOTE_H_
