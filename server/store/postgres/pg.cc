#include "server/store/postgres/pg.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/utf8.h"

namespace remex::store::internal {
namespace {

// libpq's messages end in a newline, sometimes two lines ("FATAL: ...\n
// DETAIL: ..."): one line for ours.
std::string OneLine(absl::string_view message) {
  std::string line;
  line.reserve(message.size());
  for (char c : absl::StripAsciiWhitespace(message)) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      if (!line.empty() && line.back() != ' ') line.push_back(' ');
    } else {
      line.push_back(c);
    }
  }
  return line;
}

// NOTICEs ("relation ... already exists, skipping") are not for the
// server's log.
void IgnoreNotice(void*, const char*) {}

// Removes `password=VALUE` (a query parameter, or a key=value pair, quoted
// or not) from `text`.
std::string DropPasswordPairs(std::string text) {
  for (size_t at = 0;;) {
    at = text.find("password", at);
    if (at == std::string::npos) return text;
    size_t eq = at + 8;
    while (eq < text.size() && text[eq] == ' ') ++eq;
    const bool starts_key = at == 0 || text[at - 1] == '?' ||
                            text[at - 1] == '&' || text[at - 1] == ' ';
    if (!starts_key || eq >= text.size() || text[eq] != '=') {
      at += 8;
      continue;
    }
    size_t end = eq + 1;
    while (end < text.size() && text[end] == ' ') ++end;
    if (end < text.size() && text[end] == '\'') {
      ++end;
      while (end < text.size() && text[end] != '\'') {
        if (text[end] == '\\') ++end;
        ++end;
      }
      end = std::min(end + 1, text.size());
    } else {
      while (end < text.size() && text[end] != '&' && text[end] != ' ') ++end;
    }
    // The separator after the pair goes with it.
    if (end < text.size() && (text[end] == '&' || text[end] == ' ')) ++end;
    text.erase(at, end - at);
  }
}

bool IsConnectionError(const char* sqlstate) {
  if (sqlstate == nullptr) return false;
  const absl::string_view state(sqlstate);
  // Class 08: connection exception; 57P01-57P03: the server shuts down or
  // is starting.
  return absl::StartsWith(state, "08") || state == "57P01" ||
         state == "57P02" || state == "57P03";
}

}  // namespace

std::string RedactUrl(absl::string_view url) {
  std::string text(url);
  const size_t scheme = text.find("://");
  if (scheme != std::string::npos) {
    const size_t authority = scheme + 3;
    const size_t authority_end = text.find_first_of("/?", authority);
    const size_t at =
        text.rfind('@', authority_end == std::string::npos ? std::string::npos
                                                           : authority_end);
    if (at != std::string::npos && at > authority) {
      const size_t colon = text.find(':', authority);
      if (colon != std::string::npos && colon < at) {
        text.erase(colon, at - colon);
      }
    }
  }
  return DropPasswordPairs(std::move(text));
}

Result& Result::operator=(Result&& other) noexcept {
  if (this != &other) {
    if (result_ != nullptr) PQclear(result_);
    result_ = other.result_;
    other.result_ = nullptr;
  }
  return *this;
}

Result::~Result() {
  if (result_ != nullptr) PQclear(result_);
}

int Result::rows() const { return PQntuples(result_); }

bool Result::IsNull(int row, int column) const {
  return PQgetisnull(result_, row, column) != 0;
}

absl::string_view Result::Get(int row, int column) const {
  return absl::string_view(PQgetvalue(result_, row, column),
                           PQgetlength(result_, row, column));
}

int64_t Result::GetInt(int row, int column) const {
  int64_t value = 0;
  if (!absl::SimpleAtoi(Get(row, column), &value)) return 0;
  return value;
}

std::optional<int64_t> Result::GetOptionalInt(int row, int column) const {
  if (IsNull(row, column)) return std::nullopt;
  return GetInt(row, column);
}

bool Result::GetBool(int row, int column) const {
  return Get(row, column) == "t";
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Connect(
    const std::string& url, absl::Duration timeout) {
  const std::string seconds = absl::StrCat(std::max<int64_t>(
      2, static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(timeout)))));
  // The URL's own settings win over ours (they come after), but for the
  // client encoding (it comes after). Keepalives and a TCP user timeout
  // make a database that vanished without closing the connection (a
  // partition, a dead host) a lost connection within about 30 s, rather
  // than a statement waiting for hours.
  const char* keys[] = {"connect_timeout",     "application_name",
                        "keepalives",          "keepalives_idle",
                        "keepalives_interval", "keepalives_count",
                        "tcp_user_timeout",    "dbname",
                        "client_encoding",     nullptr};
  const char* values[] = {
      seconds.c_str(), "remex",     "1",    "10",   "5", "3",
      "30000",         url.c_str(), "UTF8", nullptr};
  pg_conn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "cannot reach the store ", RedactUrl(url), ": out of memory"));
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = OneLine(PQerrorMessage(conn));
    PQfinish(conn);
    return absl::UnavailableError(
        absl::StrCat("cannot reach the store ", RedactUrl(url), ": ", message));
  }
  PQsetNoticeProcessor(conn, IgnoreNotice, nullptr);
  return std::unique_ptr<Connection>(new Connection(conn));
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::Broken() const { return PQstatus(conn_) != CONNECTION_OK; }

absl::Status Connection::Failure(pg_result* result) {
  const char* sqlstate = result == nullptr
                             ? nullptr
                             : PQresultErrorField(result, PG_DIAG_SQLSTATE);
  std::string message = OneLine(
      result == nullptr ? PQerrorMessage(conn_) : PQresultErrorMessage(result));
  if (message.empty()) message = OneLine(PQerrorMessage(conn_));
  if (Broken() || IsConnectionError(sqlstate)) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(sqlstate == nullptr
                                 ? message
                                 : absl::StrCat(message, " (", sqlstate, ")"));
}

absl::StatusOr<Result> Connection::Exec(absl::string_view sql,
                                        const std::vector<Param>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const Param& param : params) {
    values.push_back(param.has_value() ? param->c_str() : nullptr);
  }
  const std::string text(sql);
  pg_result* raw = nullptr;
  if (values.empty()) {
    // PQexec: it takes several statements at once (the migrations).
    raw = PQexec(conn_, text.c_str());
  } else {
    // Statements with parameters are the store's few constant ones,
    // prepared once per connection: planning costs more than running
    // them when a batch is small.
    auto it = prepared_.find(text);
    if (it == prepared_.end()) {
      std::string name = absl::StrCat("remex_", prepared_.size());
      Result prepared(PQprepare(conn_, name.c_str(), text.c_str(),
                                static_cast<int>(values.size()), nullptr));
      if (prepared.result_ == nullptr ||
          PQresultStatus(prepared.result_) != PGRES_COMMAND_OK) {
        return Failure(prepared.result_);
      }
      it = prepared_.emplace(text, std::move(name)).first;
    }
    raw = PQexecPrepared(conn_, it->second.c_str(),
                         static_cast<int>(values.size()), values.data(),
                         nullptr, nullptr, /*resultFormat=*/0);
  }
  Result result(raw);
  const ExecStatusType status =
      raw == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(raw);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  return Failure(raw);
}

absl::StatusOr<std::vector<std::string>> Connection::WaitForNotifications(
    absl::Duration timeout, int wake_fd) {
  std::vector<std::string> payloads;
  auto take = [&] {
    while (PGnotify* notify = PQnotifies(conn_)) {
      payloads.emplace_back(notify->extra);
      PQfreemem(notify);
    }
  };
  take();
  if (!payloads.empty()) return payloads;
  pollfd fds[2] = {{PQsocket(conn_), POLLIN, 0}, {wake_fd, POLLIN, 0}};
  const int waited = poll(fds, wake_fd >= 0 ? 2 : 1,
                          static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (waited < 0 && errno != EINTR) {
    return absl::UnavailableError(absl::StrCat("poll: ", strerror(errno)));
  }
  if (waited > 0 && (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
    if (PQconsumeInput(conn_) == 0 || Broken()) {
      return absl::UnavailableError(OneLine(PQerrorMessage(conn_)));
    }
    take();
  }
  return payloads;
}

absl::Status Connection::Run(absl::string_view sql,
                             const std::vector<Param>& params) {
  absl::StatusOr<Result> result = Exec(sql, params);
  return result.status();
}

void ArrayLiteral::Add(absl::string_view element) {
  if (!empty_) text_.push_back(',');
  empty_ = false;
  text_.push_back('"');
  for (char c : element) {
    if (c == '"' || c == '\\') text_.push_back('\\');
    text_.push_back(c);
  }
  text_.push_back('"');
}

void ArrayLiteral::AddNull() {
  if (!empty_) text_.push_back(',');
  empty_ = false;
  text_.append("NULL");
}

std::string ArrayLiteral::Take() {
  text_.push_back('}');
  std::string text;
  text.swap(text_);
  text_.push_back('{');
  empty_ = true;
  return text;
}

std::string HexEncode(absl::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    const auto byte = static_cast<unsigned char>(bytes[i]);
    hex[2 * i] = kDigits[byte >> 4];
    hex[2 * i + 1] = kDigits[byte & 0xf];
  }
  return hex;
}

absl::StatusOr<std::string> HexDecode(absl::string_view text) {
  if (!absl::ConsumePrefix(&text, "\\x") || text.size() % 2 != 0) {
    return absl::InternalError("bytea not in hex format");
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string bytes(text.size() / 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    const int high = nibble(text[2 * i]);
    const int low = nibble(text[2 * i + 1]);
    if (high < 0 || low < 0) return absl::InternalError("bad hex in bytea");
    bytes[i] = static_cast<char>((high << 4) | low);
  }
  return bytes;
}

Param TimeParam(absl::Time time) {
  if (time == absl::InfinitePast()) return std::nullopt;
  return absl::StrCat(absl::ToUnixMicros(time));
}

absl::Time TimeFromMicros(std::optional<int64_t> micros) {
  if (!micros.has_value()) return absl::InfinitePast();
  return absl::FromUnixMicros(*micros);
}

Param DurationParam(absl::Duration duration) {
  if (duration == absl::InfiniteDuration()) return std::nullopt;
  return absl::StrCat(absl::ToInt64Microseconds(duration));
}

absl::Duration DurationFromMicros(std::optional<int64_t> micros) {
  if (!micros.has_value()) return absl::InfiniteDuration();
  return absl::Microseconds(*micros);
}

std::string SafeText(absl::string_view text) {
  const bool clean =
      text.find('\0') == absl::string_view::npos && common::IsValidUtf8(text);
  if (clean) return std::string(text);
  std::string valid = common::ToValidUtf8(text);
  std::string out;
  out.reserve(valid.size());
  for (char c : valid) {
    if (c == '\0') {
      out.append("\xEF\xBF\xBD");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace remex::store::internal
