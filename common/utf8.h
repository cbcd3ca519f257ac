// UTF-8 checks. Strings in JSON values and in protobuf `string` fields must
// be valid UTF-8, or clients cannot parse the message that carries them.
#ifndef REMEX_COMMON_UTF8_H_
#define REMEX_COMMON_UTF8_H_

#include <string>

#include "absl/strings/string_view.h"

namespace remex::common {

// True if `text` is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing above U+10FFFF).
bool IsValidUtf8(absl::string_view text);

// `text` with every byte that is not part of a well-formed sequence replaced
// by U+FFFD.
std::string ToValidUtf8(absl::string_view text);

}  // namespace remex::common

#endif  // REMEX_COMMON_UTF8_H_
