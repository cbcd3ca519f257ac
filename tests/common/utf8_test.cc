#include "common/utf8.h"

#include <string>

#include "common/quote.h"
#include "gtest/gtest.h"

namespace remex::common {
namespace {

TEST(Utf8Test, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9"));       // é
  EXPECT_TRUE(IsValidUtf8("\xE2\x82\xAC"));      // €
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));  // U+1F600
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
}

TEST(Utf8Test, RejectsMalformedText) {
  EXPECT_FALSE(IsValidUtf8("\xFF"));
  EXPECT_FALSE(IsValidUtf8("\xC3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("ok\x80"));            // stray continuation
}

TEST(Utf8Test, ToValidUtf8ReplacesOnlyTheBadBytes) {
  EXPECT_EQ(ToValidUtf8("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(ToValidUtf8("a\xFF"
                        "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(ToValidUtf8("\xC3"), "\xEF\xBF\xBD");
  EXPECT_TRUE(IsValidUtf8(ToValidUtf8("\xED\xA0\x80 and \xF4\x90")));
}

// Quote (common/quote.h) puts client strings in error messages: whatever
// the bytes, the message stays valid UTF-8 and bounded.
TEST(QuoteTest, IsValidUtf8AndBoundedWhateverTheBytes) {
  EXPECT_EQ(Quote("caf\xC3\xA9"), "'caf\xC3\xA9'");
  EXPECT_EQ(Quote("p\xFA"), "'p\xEF\xBF\xBD'");
  const std::string long_bad(1000, '\xFA');
  const std::string quoted = Quote(long_bad);
  EXPECT_TRUE(IsValidUtf8(quoted));
  EXPECT_LT(quoted.size(), 4 * kMaxQuotedBytes);
  EXPECT_NE(quoted.find("(1000 bytes)"), std::string::npos);
}

}  // namespace
}  // namespace remex::common
