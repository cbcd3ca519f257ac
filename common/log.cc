#include "common/log.h"

#include <atomic>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "spdlog/logger.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace remex::log {
namespace {

// The timestamp spdlog writes before each body: UTC, milliseconds.
constexpr char kTimestamp[] = "%Y-%m-%dT%H:%M:%S.%eZ";

// What Configure() set: the format goes with the logger whose pattern
// matches it, so that they are read together.
struct Current {
  absl::Mutex mu;
  Format format ABSL_GUARDED_BY(mu) = Format::kText;
  std::shared_ptr<spdlog::logger> logger ABSL_GUARDED_BY(mu);
};

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};

std::shared_ptr<spdlog::logger> MakeLogger(
    Format format, std::shared_ptr<spdlog::sinks::sink> sink) {
  if (sink == nullptr) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  // Not registered with spdlog's registry: nothing else may reconfigure it.
  auto logger = std::make_shared<spdlog::logger>("remex", std::move(sink));
  const std::string pattern =
      format == Format::kJson ? absl::StrCat("{\"ts\":\"", kTimestamp, "\",%v")
                              : absl::StrCat(kTimestamp, " %v");
  logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
      pattern, spdlog::pattern_time_type::utc));
  // Levels are filtered in Write(), before a line is built.
  logger->set_level(spdlog::level::trace);
  logger->flush_on(spdlog::level::trace);
  return logger;
}

Current& Global() {
  static Current* const current = [] {
    auto* made = new Current;
    absl::MutexLock lock(&made->mu);
    made->logger = MakeLogger(Format::kText, nullptr);
    return made;
  }();
  return *current;
}

spdlog::level::level_enum SpdlogLevel(Level level) {
  switch (level) {
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

// logfmt needs quotes around an empty value and around one that holds a
// space, a quote, '=', a backslash or a control character.
bool NeedsQuotes(absl::string_view value) {
  if (value.empty()) return true;
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u == 0x7f || c == '"' || c == '=' || c == '\\') {
      return true;
    }
  }
  return false;
}

void AppendQuoted(std::string& out, absl::string_view value) {
  out += '"';
  for (const char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (const auto u = static_cast<unsigned char>(c);
            u < 0x20 || u == 0x7f) {
          absl::StrAppendFormat(&out, "\\x%02x", u);
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void AppendTextValue(std::string& out, absl::string_view value) {
  if (NeedsQuotes(value)) {
    AppendQuoted(out, value);
  } else {
    out.append(value.data(), value.size());
  }
}

// A JSON string; bytes that are not UTF-8 become U+FFFD, so that every line
// parses whatever a peer or a function sent.
void AppendJsonString(std::string& out, absl::string_view value) {
  out += nlohmann::json(std::string(value))
             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

absl::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

absl::string_view FormatName(Format format) {
  return format == Format::kJson ? "json" : "text";
}

absl::StatusOr<Level> ParseLevel(absl::string_view text) {
  for (Level level :
       {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    if (text == LevelName(level)) return level;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("expected debug, info, warn or error, got '", text, "'"));
}

absl::StatusOr<Format> ParseFormat(absl::string_view text) {
  if (text == "text") return Format::kText;
  if (text == "json") return Format::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("expected text or json, got '", text, "'"));
}

Field::Field(absl::string_view key, absl::Duration value)
    : key_(key), value_(absl::FormatDuration(value)) {}

void Field::AppendText(std::string& out) const {
  std::visit(
      [&out](const auto& value) {
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, absl::string_view>) {
          AppendTextValue(out, value);
        } else if constexpr (std::is_same_v<T, std::string>) {
          AppendTextValue(out, value);
        } else if constexpr (std::is_same_v<T, bool>) {
          out += value ? "true" : "false";
        } else {
          absl::StrAppend(&out, value);
        }
      },
      value_);
}

void Field::AppendJson(std::string& out) const {
  std::visit(
      [&out](const auto& value) {
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, absl::string_view>) {
          AppendJsonString(out, value);
        } else if constexpr (std::is_same_v<T, std::string>) {
          AppendJsonString(out, value);
        } else if constexpr (std::is_same_v<T, bool>) {
          out += value ? "true" : "false";
        } else if constexpr (std::is_same_v<T, double>) {
          out += std::isfinite(value) ? nlohmann::json(value).dump() : "null";
        } else {
          absl::StrAppend(&out, value);
        }
      },
      value_);
}

std::string FormatBody(Format format, Level level, absl::string_view event,
                       absl::string_view message, Fields fields) {
  std::string out;
  out.reserve(128);
  if (format == Format::kJson) {
    absl::StrAppend(&out, "\"level\":\"", LevelName(level), "\",\"event\":");
    AppendJsonString(out, event);
    out += ",\"msg\":";
    AppendJsonString(out, message);
    for (const Field& field : fields) {
      out += ',';
      AppendJsonString(out, field.key());
      out += ':';
      field.AppendJson(out);
    }
    out += '}';
    return out;
  }
  absl::StrAppend(&out, LevelName(level), " ");
  AppendTextValue(out, event);
  for (const Field& field : fields) {
    absl::StrAppend(&out, " ", field.key(), "=");
    field.AppendText(out);
  }
  out += " msg=";
  AppendQuoted(out, message);
  return out;
}

void Configure(const Options& options) {
  std::shared_ptr<spdlog::logger> logger =
      MakeLogger(options.format, options.sink);
  Current& current = Global();
  {
    absl::MutexLock lock(&current.mu);
    current.format = options.format;
    current.logger = std::move(logger);
  }
  g_level.store(static_cast<int>(options.level), std::memory_order_relaxed);
}

bool Enabled(Level level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void Write(Level level, absl::string_view event, absl::string_view message,
           Fields fields) {
  if (!Enabled(level)) return;
  Current& current = Global();
  Format format;
  std::shared_ptr<spdlog::logger> logger;
  {
    absl::ReaderMutexLock lock(&current.mu);
    format = current.format;
    logger = current.logger;
  }
  const std::string body = FormatBody(format, level, event, message, fields);
  logger->log(spdlog::source_loc{}, SpdlogLevel(level),
              spdlog::string_view_t(body.data(), body.size()));
}

bool RateLimit::Allow(int64_t& suppressed) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  if (now - last_line_ < period_) {
    ++suppressed_;
    return false;
  }
  last_line_ = now;
  suppressed = std::exchange(suppressed_, 0);
  return true;
}

}  // namespace remex::log
