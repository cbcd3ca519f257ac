// A fixture for tests that run the real server on a real PostgreSQL 15 of
// their own: one PostgreSQL per test suite (initdb takes seconds; a test may
// stop and restart it), a fresh database per test.
#ifndef REMEX_TESTS_TESTING_POSTGRES_TEST_H_
#define REMEX_TESTS_TESTING_POSTGRES_TEST_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres_server.h"

namespace remex::testing {

class PostgresTest : public ::testing::Test {
 protected:
  using Rows = std::vector<std::vector<std::string>>;

  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<PostgresServer>> postgres =
        PostgresServer::Start();
    ASSERT_TRUE(postgres.ok()) << postgres.status();
    postgres_ = postgres->release();
  }
  static void TearDownTestSuite() {
    delete postgres_;
    postgres_ = nullptr;
  }

  // A fresh database in url_; the PostgreSQL restarted first if a test
  // before left it stopped.
  void SetUp() override {
    ASSERT_NE(postgres_, nullptr);
    if (postgres_->pid() < 0) {
      ASSERT_TRUE(postgres_->Restart().ok());
    }
    absl::StatusOr<std::string> url = postgres_->CreateDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
  }

  // The rows of `sql` on this test's database (a failed test and none if
  // it fails).
  Rows Query(const std::string& sql) const {
    absl::StatusOr<Rows> rows = postgres_->Query(url_, sql);
    EXPECT_TRUE(rows.ok()) << rows.status() << "\n" << sql;
    return rows.ok() ? *rows : Rows();
  }

  static inline PostgresServer* postgres_ = nullptr;
  std::string url_;
};

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_POSTGRES_TEST_H_
