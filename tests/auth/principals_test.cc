#include "server/auth/principals.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace remex::auth {
namespace {

using ::testing::HasSubstr;

std::string Entry(const std::string& name, const std::string& token,
                  const std::string& rest = "") {
  return absl::StrCat("  - name: ", name,
                      "\n    token_sha256: ", TokenSha256Hex(token), "\n",
                      rest);
}

TEST(PrincipalsTest, TokenHashIsSha256Hex) {
  // printf %s test | sha256sum
  EXPECT_EQ(TokenSha256Hex("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
}

TEST(PrincipalsTest, ParsesRolesGlobsAndQuota) {
  absl::StatusOr<std::shared_ptr<const PrincipalSet>> set = PrincipalSet::Parse(
      absl::StrCat("principals:\n",
                   Entry("alice", "a",
                         "    roles: [read]\n"
                         "    functions: [\"rep_*\", echo]\n"
                         "    max_active_tasks: 3\n"),
                   "  - name: ci\n"),
      "auth.yaml");
  ASSERT_TRUE(set.ok()) << set.status();
  const Principal* alice = (*set)->FindByToken("a");
  ASSERT_NE(alice, nullptr);
  EXPECT_EQ(alice->name, "alice");
  EXPECT_TRUE(alice->HasAny(kRead));
  EXPECT_FALSE(alice->HasAny(kSubmit));
  EXPECT_EQ(alice->max_active_tasks, 3);
  EXPECT_TRUE(alice->MaySubmit("rep_daily").ok());
  EXPECT_TRUE(alice->MaySubmit("echo").ok());
  EXPECT_EQ(alice->MaySubmit("sleep").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ((*set)->FindByToken("b"), nullptr);
  const Principal* ci = (*set)->FindByName("ci");
  ASSERT_NE(ci, nullptr);
  EXPECT_TRUE(ci->HasAny(kSubmit) && ci->HasAny(kRead));
  EXPECT_FALSE(ci->SeesAllTasks());
}

TEST(PrincipalsTest, RefusesBadFilesNamingTheProblem) {
  const auto error = [](const std::string& yaml) {
    return std::string(PrincipalSet::Parse(yaml, "f").status().message());
  };
  EXPECT_THAT(error("principals: 3\n"), HasSubstr("list `principals`"));
  EXPECT_THAT(error("principals: [{token_sha256: ab}]\n"),
              HasSubstr("needs a name"));
  EXPECT_THAT(error("principals: [{name: a, token_sha256: ab}]\n"),
              HasSubstr("64 hex digits"));
  EXPECT_THAT(error("principals: [{name: a, roles: [root]}]\n"),
              HasSubstr("unknown role"));
  EXPECT_THAT(error("principals: [{name: a, colour: red}]\n"),
              HasSubstr("unknown key"));
  EXPECT_THAT(error("principals: [{name: a}, {name: a}]\n"),
              HasSubstr("repeats"));
  EXPECT_THAT(
      error(absl::StrCat("principals:\n", Entry("a", "t"), Entry("b", "t"))),
      HasSubstr("token_sha256 repeats"));
  EXPECT_THAT(error("principals: [{name: a, max_active_tasks: -1}]\n"),
              HasSubstr("negative"));
}

TEST(AuthenticatorTest, ModesAndFailures) {
  absl::StatusOr<std::unique_ptr<Authenticator>> mtls_only =
      Authenticator::Create("", /*client_certificates=*/true);
  ASSERT_TRUE(mtls_only.ok());
  Authentication by_cert = (*mtls_only)->Authenticate({.certificate_cn = "ci"});
  ASSERT_NE(by_cert.principal, nullptr);
  EXPECT_EQ(by_cert.principal->name, "ci");
  Authentication none = (*mtls_only)->Authenticate({});
  EXPECT_EQ(none.principal, nullptr);
  EXPECT_EQ(none.failure, AuthFailure::kMissingCredentials);
  EXPECT_EQ(none.status.code(), absl::StatusCode::kUnauthenticated);
  Authentication basic =
      (*mtls_only)->Authenticate({.authorization = "Basic abc"});
  EXPECT_EQ(basic.failure, AuthFailure::kMalformedHeader);
  Authentication unknown =
      (*mtls_only)->Authenticate({.authorization = "Bearer abc"});
  EXPECT_EQ(unknown.failure, AuthFailure::kUnknownToken);
  EXPECT_FALSE(Authenticator().enabled());
}

}  // namespace
}  // namespace remex::auth
