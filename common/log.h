// The server's log: one line per event, on stderr, leveled and timestamped,
// as text or JSON (spdlog underneath). Every module logs through this:
//
//   log::Warn("worker_died", "worker killed by signal SIGSEGV",
//             {{"pool", "process"}, {"pid", 4242}, {"signal", "SIGSEGV"}});
//
// text (logfmt-like; values quoted when they hold spaces, quotes or '='):
//   2026-12-03T11:00:00.123Z warn worker_died pool=process pid=4242
//   signal=SIGSEGV msg="worker killed by signal SIGSEGV"
// json (one object a line; keys ts, level, event, msg, then the fields):
//   {"ts":"2026-12-03T11:00:00.123Z","level":"warn","event":"worker_died",
//    "msg":"worker killed by signal SIGSEGV","pool":"process","pid":4242,...}
//
// Events are rare by contract (starts, deaths, reconnects, reloads): never
// log a line per task on a hot path. A disabled level costs one atomic load.
//
// Thread-safe: any thread may log at any time; Configure() may run while
// others log (a line is written whole, in the old or the new format).
#ifndef REMEX_COMMON_LOG_H_
#define REMEX_COMMON_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <variant>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace spdlog::sinks {
class sink;
}  // namespace spdlog::sinks

namespace remex::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class Format { kText, kJson };

// "debug", "info", "warn", "error".
absl::string_view LevelName(Level level);
// "text", "json".
absl::string_view FormatName(Format format);
// INVALID_ARGUMENT naming the accepted values, e.g. "expected text or json,
// got 'xml'" (callers prefix the flag or key).
absl::StatusOr<Level> ParseLevel(absl::string_view text);
absl::StatusOr<Format> ParseFormat(absl::string_view text);

// One key=value of an event. Keys are snake_case literals; a value is a
// string, an integer, a floating point number, a bool or a duration
// (written as "1.5s"). A Field only lives for the call it is passed to:
// string values are viewed, not copied.
class Field {
 public:
  Field(absl::string_view key, absl::string_view value)
      : key_(key), value_(value) {}
  Field(absl::string_view key, const char* value)
      : key_(key), value_(absl::string_view(value)) {}
  Field(absl::string_view key, const std::string& value)
      : key_(key), value_(absl::string_view(value)) {}
  Field(absl::string_view key, bool value) : key_(key), value_(value) {}
  Field(absl::string_view key, double value) : key_(key), value_(value) {}
  Field(absl::string_view key, absl::Duration value);
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>,
                             int> = 0>
  Field(absl::string_view key, T value) : key_(key) {
    if constexpr (std::is_signed_v<T>) {
      value_ = static_cast<int64_t>(value);
    } else {
      value_ = static_cast<uint64_t>(value);
    }
  }

  absl::string_view key() const { return key_; }
  // Appends the value as logfmt (quoted if need be) or as JSON.
  void AppendText(std::string& out) const;
  void AppendJson(std::string& out) const;

 private:
  absl::string_view key_;
  std::variant<absl::string_view, std::string, int64_t, uint64_t, double, bool>
      value_;
};

// A braced list ({{"pid", 1}, {"pool", name}}) or a vector of Fields.
using Fields = absl::Span<const Field>;

struct Options {
  Format format = Format::kText;
  Level level = Level::kInfo;
  // Where lines go; null: stderr (spdlog's stderr_sink_mt). Tests pass a
  // sink that collects them.
  std::shared_ptr<spdlog::sinks::sink> sink;
};

// Sets the format, the level and the sink of every later line. Until the
// first call: text, info, stderr.
void Configure(const Options& options);

// Whether a line of `level` would be written now.
bool Enabled(Level level);

// Writes one event line (nothing if `level` is not enabled). `event` is a
// stable snake_case name (the README lists them); `message` says it for a
// person; `fields` carry the values a machine wants.
void Write(Level level, absl::string_view event, absl::string_view message,
           Fields fields = {});

inline void Debug(absl::string_view event, absl::string_view message,
                  Fields fields = {}) {
  Write(Level::kDebug, event, message, fields);
}
inline void Info(absl::string_view event, absl::string_view message,
                 Fields fields = {}) {
  Write(Level::kInfo, event, message, fields);
}
inline void Warn(absl::string_view event, absl::string_view message,
                 Fields fields = {}) {
  Write(Level::kWarn, event, message, fields);
}
inline void Error(absl::string_view event, absl::string_view message,
                  Fields fields = {}) {
  Write(Level::kError, event, message, fields);
}

// The line Write() would hand to the sink after the timestamp (exposed for
// tests): text "LEVEL EVENT k=v ... msg=\"...\"", JSON the object's members
// after "ts" and its closing brace.
std::string FormatBody(Format format, Level level, absl::string_view event,
                       absl::string_view message, Fields fields);

// Lets one line through per `period` and counts the others, so that an event
// that may come in floods (failed authentications, recycled workers) is
// logged at once and then at most once a period with how many were left
// out. Thread-safe.
class RateLimit {
 public:
  explicit RateLimit(absl::Duration period) : period_(period) {}
  // True if a line may be written now; then `suppressed` is how many
  // Allow() calls returned false since the last line.
  bool Allow(int64_t& suppressed);

 private:
  const absl::Duration period_;
  absl::Mutex mu_;
  absl::Time last_line_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace remex::log

#endif  // REMEX_COMMON_LOG_H_
