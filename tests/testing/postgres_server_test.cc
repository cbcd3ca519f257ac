// The PostgreSQL fixture itself: start, queries, databases, stop and
// restart, and no process left behind.
#include "tests/testing/postgres_server.h"

#include <signal.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace remex::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Ne;
using Rows = std::vector<std::vector<std::string>>;

// Whether a process `pid` exists (zombies included).
bool ProcessExists(pid_t pid) { return kill(pid, 0) == 0 || errno != ESRCH; }

TEST(PostgresServerTest, StartsQueriesStopsRestartsAndLeavesNothingBehind) {
  absl::StatusOr<std::unique_ptr<PostgresServer>> started =
      PostgresServer::Start();
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<PostgresServer> server = *std::move(started);
  EXPECT_EQ(server->url(), absl::StrCat("postgresql://postgres@127.0.0.1:",
                                        server->port(), "/remex"));
  EXPECT_THAT(server->port(), Ne(0));
  const pid_t first_pid = server->pid();
  ASSERT_GT(first_pid, 0);

  absl::StatusOr<Rows> one = server->Query(server->url(), "select 1, null");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_THAT(*one, ElementsAre(ElementsAre("1", "")));

  // Commits are real: the durability tests depend on it.
  absl::StatusOr<Rows> settings = server->Query(
      server->url(),
      "select current_setting('fsync'), current_setting('synchronous_commit')");
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_THAT(*settings, ElementsAre(ElementsAre("on", "on")));

  // Two databases, apart from each other.
  absl::StatusOr<std::string> a = server->CreateDatabase();
  absl::StatusOr<std::string> b = server->CreateDatabase();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(*a, *b);
  ASSERT_TRUE(server
                  ->Query(*a,
                          "create table t (x int); insert into t values "
                          "(7)")
                  .ok());
  absl::StatusOr<Rows> in_a = server->Query(*a, "select x from t");
  ASSERT_TRUE(in_a.ok()) << in_a.status();
  EXPECT_THAT(*in_a, ElementsAre(ElementsAre("7")));
  absl::StatusOr<Rows> in_b = server->Query(*b, "select x from t");
  ASSERT_FALSE(in_b.ok());
  EXPECT_THAT(in_b.status().message(), HasSubstr("does not exist"));
  absl::StatusOr<Rows> names = server->Query(
      server->url(), absl::StrCat("select count(*) from pg_database where "
                                  "datname in ('",
                                  a->substr(a->rfind('/') + 1), "', '",
                                  b->substr(b->rfind('/') + 1), "')"));
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, ElementsAre(ElementsAre("2")));

  // Stopped: connections fail, the postmaster is gone.
  ASSERT_TRUE(server->Stop().ok());
  EXPECT_EQ(server->pid(), -1);
  EXPECT_FALSE(ProcessExists(first_pid));
  EXPECT_EQ(server->Query(*a, "select 1").status().code(),
            absl::StatusCode::kUnavailable);

  // Restarted on the same port, with what was committed before.
  ASSERT_TRUE(server->Restart().ok()) << server->Log();
  EXPECT_EQ(server->Restart().code(), absl::StatusCode::kFailedPrecondition);
  const pid_t second_pid = server->pid();
  ASSERT_GT(second_pid, 0);
  in_a = server->Query(*a, "select x from t");
  ASSERT_TRUE(in_a.ok()) << in_a.status();
  EXPECT_THAT(*in_a, ElementsAre(ElementsAre("7")));

  // The destructor stops the postmaster (and so its children, which it
  // waits for) and removes the dir.
  const std::string dir = server->data_dir();
  EXPECT_TRUE(std::filesystem::exists(dir));
  server.reset();
  EXPECT_FALSE(ProcessExists(second_pid));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(PostgresServerTest, QueryReportsBadSql) {
  absl::StatusOr<std::unique_ptr<PostgresServer>> server =
      PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  const absl::StatusOr<Rows> rows =
      (*server)->Query((*server)->url(), "select * from no_such_table");
  EXPECT_EQ(rows.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(rows.status().message(), HasSubstr("no_such_table"));
}

}  // namespace
}  // namespace remex::testing
