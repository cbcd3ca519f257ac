// remex-server with --auth, as its users meet it: tokens let principals in
// (or not), roles and function globs limit what they do, each task is seen
// only by its owner and admins, max_active_tasks bounds a principal, SIGHUP
// reloads the file, and protected mode keeps an open server off the network.
#include <signal.h>

#include <future>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "remex/client.h"
#include "remex/errors.h"
#include "remex/json.h"
#include "server/auth/principals.h"
#include "tests/monitoring/http_get.h"
#include "tests/testing/server_test.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using ::testing::HasSubstr;

constexpr char kAliceToken[] = "alice-token-0123456789";
constexpr char kBobToken[] = "bob-token-0123456789";
constexpr char kReaderToken[] = "reader-token-0123456789";
constexpr char kOpsToken[] = "ops-token-0123456789";
constexpr char kCarolToken[] = "carol-token-0123456789";

std::string Principal(const std::string& name, const std::string& token,
                      const std::string& rest) {
  return absl::StrCat("  - name: ", name,
                      "\n    token_sha256: ", auth::TokenSha256Hex(token), "\n",
                      rest);
}

std::string AuthFile(bool with_carol = false) {
  std::string text = "principals:\n";
  text += Principal("alice", kAliceToken, "    max_active_tasks: 2\n");
  text += Principal("bob", kBobToken, "    functions: [\"ech*\"]\n");
  text += Principal("reader", kReaderToken, "    roles: [read]\n");
  text += Principal("ops", kOpsToken, "    roles: [admin]\n");
  if (with_carol) text += Principal("carol", kCarolToken, "");
  return text;
}

class AuthServerTest : public testing::ServerTest {
 protected:
  AuthServerTest() : ServerTest(absl::Seconds(20)) {}

  void SetUp() override {
    auth_path_ = WriteFile("auth.yaml", AuthFile());
    StartServer({"--auth", auth_path_});
  }

  Client ClientWith(const std::string& token) {
    ClientOptions options;
    options.token = token;
    return Client(server().address(), options);
  }

  std::string auth_path_;
};

TEST_F(AuthServerTest, MissingOrUnknownTokensAreUnauthenticated) {
  Client anonymous(server().address());
  EXPECT_EQ(anonymous.Get("x").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(anonymous.TrySubmit("echo", Json("{}")).status().code(),
            absl::StatusCode::kUnauthenticated);
  Client stranger = ClientWith("not-a-token");
  absl::Status status = stranger.ListFunctions().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(status.message(), HasSubstr("unknown bearer token"));
  // The Session (the SDK's default path) ends with the same code.
  absl::StatusOr<Future> future = stranger.TrySubmit("echo", Json("{}"));
  if (future.ok()) {
    EXPECT_EQ(future->wait_for(absl::Seconds(10)), std::future_status::ready);
    EXPECT_NE(future->task().state(), v1::SUCCEEDED);
  } else {
    EXPECT_EQ(future.status().code(), absl::StatusCode::kUnauthenticated);
  }
  // Counted by reason.
  absl::StatusOr<std::string> metrics = server().MetricsAddress();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  absl::StatusOr<testing::HttpResponse> page =
      testing::HttpGet(*metrics, "/metrics");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(page->body,
              HasSubstr("remex_auth_failures_total{reason=\"unknown_token\"}"));
  EXPECT_THAT(page->body, HasSubstr("remex_auth_failures_total{reason="
                                    "\"missing_credentials\"}"));
  // Logged, without a line per failure.
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return absl::StrContains(server().ServerOutput(),
                                 "failed authentication");
      },
      absl::Seconds(5)));
}

TEST_F(AuthServerTest, OwnersSeeTheirTasksAndNobodyElseDoes) {
  Client alice = ClientWith(kAliceToken);
  Client bob = ClientWith(kBobToken);
  Client ops = ClientWith(kOpsToken);
  absl::StatusOr<Future> done =
      alice.TrySubmit("echo", Json(R"({"secret": "a"})"));
  ASSERT_TRUE(done.ok()) << done.status();
  done->wait();
  EXPECT_EQ(done->task().owner(), "alice");
  absl::StatusOr<Future> running =
      alice.TrySubmit("sleep", Json(R"({"ms": 60000})"));
  ASSERT_TRUE(running.ok()) << running.status();
  const std::string id = done->task().id();
  const std::string running_id = running->id();

  // Bob: NOT_FOUND everywhere, as for an id that does not exist.
  EXPECT_EQ(bob.Get(id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(bob.Await(id, absl::Seconds(1)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(bob.Cancel(running_id).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(bob.Delete(id).code(), absl::StatusCode::kNotFound);
  absl::StatusOr<v1::ListResponse> bobs = bob.List(v1::ListRequest());
  ASSERT_TRUE(bobs.ok()) << bobs.status();
  EXPECT_EQ(bobs->tasks_size(), 0);
  // Attaching a future to alice's task fails for bob too.
  EXPECT_THROW(bob.Attach(id), RpcError);
  // Alice's running task is untouched by bob's cancel.
  EXPECT_EQ(alice.Get(running_id)->state(), v1::RUNNING);

  // Alice sees both; an admin sees and cancels them.
  absl::StatusOr<v1::ListResponse> alices = alice.List(v1::ListRequest());
  ASSERT_TRUE(alices.ok());
  EXPECT_EQ(alices->tasks_size(), 2);
  absl::StatusOr<v1::Task> seen = ops.Get(id);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(seen->owner(), "alice");
  absl::StatusOr<v1::ListResponse> all = ops.List(v1::ListRequest());
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->tasks_size(), 2);
  absl::StatusOr<v1::Task> cancelled = ops.Cancel(running_id);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  running->wait();
  EXPECT_EQ(running->task().state(), v1::CANCELLED);
  EXPECT_TRUE(alice.Delete(id).ok());
}

TEST_F(AuthServerTest, RolesAndFunctionGlobsArePermissionDenied) {
  Client bob = ClientWith(kBobToken);
  absl::StatusOr<Future> allowed = bob.TrySubmit("echo", Json("{}"));
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  allowed->wait();
  EXPECT_EQ(allowed->task().state(), v1::SUCCEEDED);
  ClientOptions unary;
  unary.token = kBobToken;
  unary.use_session = false;
  Client bob_unary(server().address(), unary);
  absl::StatusOr<Future> denied =
      bob_unary.TrySubmit("sleep", Json(R"({"ms": 1})"));
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.status().message(), HasSubstr("sleep"));
  // Through the Session too.
  absl::StatusOr<Future> denied_in_session =
      bob.TrySubmit("sleep", Json(R"({"ms": 1})"));
  if (denied_in_session.ok()) {
    EXPECT_EQ(denied_in_session->wait_for(absl::Seconds(10)),
              std::future_status::ready);
    EXPECT_NE(denied_in_session->task().state(), v1::SUCCEEDED);
  } else {
    EXPECT_EQ(denied_in_session.status().code(),
              absl::StatusCode::kPermissionDenied);
  }

  // Bob lists only the functions his globs allow.
  absl::StatusOr<v1::ListFunctionsResponse> bobs_functions =
      bob.ListFunctions();
  ASSERT_TRUE(bobs_functions.ok()) << bobs_functions.status();
  ASSERT_GT(bobs_functions->functions_size(), 0);
  for (const v1::FunctionInfo& function : bobs_functions->functions()) {
    EXPECT_TRUE(absl::StartsWith(function.name(), "ech")) << function.name();
  }

  Client reader = ClientWith(kReaderToken);
  ClientOptions reader_unary;
  reader_unary.token = kReaderToken;
  reader_unary.use_session = false;
  Client reader_plain(server().address(), reader_unary);
  EXPECT_EQ(reader_plain.TrySubmit("echo", Json("{}")).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(reader.ListFunctions().ok());
  EXPECT_EQ(reader.Delete("x").code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(AuthServerTest, MaxActiveTasksIsResourceExhausted) {
  ClientOptions options;
  options.token = kAliceToken;
  options.use_session = false;
  Client alice(server().address(), options);
  std::vector<Future> running;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<Future> future =
        alice.TrySubmit("sleep", Json(R"({"ms": 60000})"));
    ASSERT_TRUE(future.ok()) << future.status();
    running.push_back(*std::move(future));
  }
  absl::StatusOr<Future> third = alice.TrySubmit("echo", Json("{}"));
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  // Others are not limited by alice's quota.
  Client bob = ClientWith(kBobToken);
  EXPECT_TRUE(bob.TrySubmit("echo", Json("{}")).ok());
  // A slot comes back when a task ends.
  ASSERT_TRUE(alice.Cancel(running[0].id()).ok());
  running[0].wait();
  absl::StatusOr<Future> after = alice.TrySubmit("echo", Json("{}"));
  ASSERT_TRUE(after.ok()) << after.status();
  after->wait();
  EXPECT_EQ(after->task().state(), v1::SUCCEEDED);
  ASSERT_TRUE(alice.Cancel(running[1].id()).ok());
}

TEST_F(AuthServerTest, SighupReloadsTheAuthFileAndKeepsItWhenBad) {
  Client carol = ClientWith(kCarolToken);
  EXPECT_EQ(carol.ListFunctions().status().code(),
            absl::StatusCode::kUnauthenticated);
  // An open session survives the reload.
  Client alice = ClientWith(kAliceToken);
  absl::StatusOr<Future> before = alice.TrySubmit("echo", Json("{}"));
  ASSERT_TRUE(before.ok());
  before->wait();

  WriteFile("auth.yaml", AuthFile(/*with_carol=*/true));
  ASSERT_EQ(server().Signal(SIGHUP), 0);
  EXPECT_TRUE(testing::WaitUntil([&] { return carol.ListFunctions().ok(); },
                                 absl::Seconds(10)));
  absl::StatusOr<Future> after = alice.TrySubmit("echo", Json("{}"));
  ASSERT_TRUE(after.ok()) << after.status();
  after->wait();
  EXPECT_EQ(after->task().state(), v1::SUCCEEDED);

  WriteFile("auth.yaml", "principals: [{name: x, roles: [wizard]}]\n");
  ASSERT_EQ(server().Signal(SIGHUP), 0);
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return absl::StrContains(server().ServerOutput(),
                                 "kept the previous principals");
      },
      absl::Seconds(10)));
  EXPECT_TRUE(carol.ListFunctions().ok());
}

TEST(ProtectedModeTest, AnOpenServerRefusesTheNetworkWithoutInsecure) {
  testing::ProcessResult refused = testing::RunServerExpectingExit(
      {"--listen", "0.0.0.0:0", "--metrics-listen", "none"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("--insecure"));
}

class InsecureServerTest : public testing::ServerTest {
 protected:
  InsecureServerTest() : ServerTest(absl::Seconds(20)) {}
};

TEST_F(InsecureServerTest, InsecureServesTheNetworkAndWarns) {
  StartServer({"--listen", "0.0.0.0:0", "--insecure"});
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return absl::StrContains(server().ServerOutput(), "WARNING"); },
      absl::Seconds(5)));
}

}  // namespace
}  // namespace remex
