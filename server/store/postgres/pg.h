// A thin layer over libpq for the PostgreSQL store: one connection, its
// results, and the text encodings of parameters (arrays included).
//
// Every parameter travels in text format: scalars as their text, arrays as
// PostgreSQL array literals (ArrayLiteral quotes every element), and bytes as
// hex (decoded in SQL with decode(x, 'hex'), read back with HexDecode), so
// that no byte value needs escaping anywhere.
#ifndef REMEX_SERVER_STORE_POSTGRES_PG_H_
#define REMEX_SERVER_STORE_POSTGRES_PG_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

struct pg_conn;
struct pg_result;

namespace remex::store::internal {

// `url` with any password removed (from a URI's user info, its
// `password=` query parameter, or a key=value connection string), for
// messages.
std::string RedactUrl(absl::string_view url);

// A statement's parameter: nullopt is SQL NULL.
using Param = std::optional<std::string>;

class Connection;

// One statement's result rows, in text format. Movable, not copyable.
class Result {
 public:
  explicit Result(pg_result* result) : result_(result) {}
  Result(Result&& other) noexcept : result_(other.result_) {
    other.result_ = nullptr;
  }
  Result& operator=(Result&& other) noexcept;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  ~Result();

  int rows() const;
  bool IsNull(int row, int column) const;
  absl::string_view Get(int row, int column) const;
  int64_t GetInt(int row, int column) const;
  // NULL is nullopt.
  std::optional<int64_t> GetOptionalInt(int row, int column) const;
  bool GetBool(int row, int column) const;

 private:
  friend class Connection;

  pg_result* result_;
};

// One connection. Thread-compatible: one thread uses it at a time.
class Connection {
 public:
  // Connects to `url` (anything libpq accepts), within `timeout` (libpq
  // counts whole seconds, at least 2). The error is one line naming the
  // redacted URL and libpq's reason.
  static absl::StatusOr<std::unique_ptr<Connection>> Connect(
      const std::string& url, absl::Duration timeout);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Runs `sql` with `params` ($1, $2, ...), prepared on first use (so
  // `sql` should be one of a few constant statements). Errors: UNAVAILABLE when
  // the connection is lost (then Broken() is true), INTERNAL for any other
  // failure of the statement (its SQLSTATE and message).
  absl::StatusOr<Result> Exec(absl::string_view sql,
                              const std::vector<Param>& params = {});
  // Exec, for statements whose rows do not matter.
  absl::Status Run(absl::string_view sql,
                   const std::vector<Param>& params = {});

  // True once the connection is lost: it is then of no further use.
  bool Broken() const;

  // The payloads of the NOTIFYs received on channels this connection
  // LISTENs to (LISTEN is a statement: Run("LISTEN name")), in order:
  // those already read, else those that arrive within `timeout` or until
  // `wake_fd` (if >= 0) is readable. UNAVAILABLE when the connection is
  // lost.
  absl::StatusOr<std::vector<std::string>> WaitForNotifications(
      absl::Duration timeout, int wake_fd = -1);

 private:
  explicit Connection(pg_conn* conn) : conn_(conn) {}

  // The error of a failed statement (`result` may be null).
  absl::Status Failure(pg_result* result);

  pg_conn* conn_;
  // Statement text -> the name it is prepared under on this connection.
  absl::flat_hash_map<std::string, std::string> prepared_;
};

// Builds the text of a PostgreSQL array literal: {"a","b",NULL}.
class ArrayLiteral {
 public:
  void Add(absl::string_view element);
  void AddNull();
  // The literal, consumed.
  std::string Take();

 private:
  std::string text_ = "{";
  bool empty_ = true;
};

// Bytes as lowercase hex (what decode(x, 'hex') reads), and back from
// bytea's text output (`\x` and hex digits). HexDecode fails on anything
// else.
std::string HexEncode(absl::string_view bytes);
absl::StatusOr<std::string> HexDecode(absl::string_view text);

// Unix microseconds, the way times travel (converted in SQL to and from
// timestamptz exactly: see the store's statements). InfinitePast is NULL.
Param TimeParam(absl::Time time);
absl::Time TimeFromMicros(std::optional<int64_t> micros);
// Durations as microseconds; InfiniteDuration is NULL.
Param DurationParam(absl::Duration duration);
absl::Duration DurationFromMicros(std::optional<int64_t> micros);

// `text` as PostgreSQL text stores it: valid UTF-8 without NUL (NUL becomes
// U+FFFD, as does each byte of a malformed sequence).
std::string SafeText(absl::string_view text);

}  // namespace remex::store::internal

#endif  // REMEX_SERVER_STORE_POSTGRES_PG_H_
