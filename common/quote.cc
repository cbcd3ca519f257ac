#include "common/quote.h"

#include "absl/strings/str_cat.h"
#include "common/utf8.h"

namespace remex::common {

std::string Quote(absl::string_view text) {
  if (text.size() <= kMaxQuotedBytes) {
    return absl::StrCat("'", ToValidUtf8(text), "'");
  }
  size_t cut = kMaxQuotedBytes;
  // Back off over continuation bytes (10xxxxxx) so as not to split a
  // character.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return absl::StrCat("'", ToValidUtf8(text.substr(0, cut)), "\xE2\x80\xA6' (",
                      text.size(), " bytes)");
}

}  // namespace remex::common
