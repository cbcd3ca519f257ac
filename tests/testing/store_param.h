// The store a conformance test runs against: parameterized suites take a
// StoreKind and start remex-server with --store FreshStoreUrl(kind). The
// PostgreSQL runs share one real PostgreSQL 15 per test binary (started on
// first use) and get a fresh database each.
#ifndef REMEX_TESTS_TESTING_STORE_PARAM_H_
#define REMEX_TESTS_TESTING_STORE_PARAM_H_

#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres_server.h"

namespace remex::testing {

enum class StoreKind { kMemory, kPostgres };

// Both kinds, for INSTANTIATE_TEST_SUITE_P(Stores, Suite,
// ::testing::ValuesIn(kAllStores), StoreKindName).
inline constexpr StoreKind kAllStores[] = {StoreKind::kMemory,
                                           StoreKind::kPostgres};

// "memory" or "postgres": the suffix of a parameterized test's name.
std::string StoreKindName(const ::testing::TestParamInfo<StoreKind>& info);
// The same for gtest's messages (GetParam() = memory).
void PrintTo(StoreKind kind, std::ostream* os);

// The PostgreSQL shared by this test binary, started on the first call
// (initdb takes seconds) and stopped when the binary exits. Call it on the
// test's main thread (the postmaster dies with the thread that started it);
// an error if it cannot start.
absl::StatusOr<PostgresServer*> SharedPostgres();

// The value of --store for a fresh store of `kind`: "memory", or the URL of
// a new, empty database on SharedPostgres() (made ahead, on another thread,
// while the previous test ran). Call it on the test's main thread.
absl::StatusOr<std::string> FreshStoreUrl(StoreKind kind);

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_STORE_PARAM_H_
