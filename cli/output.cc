#include "cli/output.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/timestamp.pb.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "remex/json.h"

namespace remex::cli {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Integers of this magnitude or less are exact as JSON numbers (doubles).
constexpr uint64_t kLargestSafeInteger = (uint64_t{1} << 53) - 1;

void AppendQuoted(absl::string_view text, std::string* out) {
  out->push_back('"');
  for (const char c : text) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", static_cast<int>(c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

void AppendDouble(double value, std::string* out) {
  if (std::isnan(value)) {
    out->append("\"NaN\"");
  } else if (std::isinf(value)) {
    out->append(value > 0 ? "\"Infinity\"" : "\"-Infinity\"");
  } else {
    absl::StrAppend(out, value);
  }
}

absl::Time FromProtoTime(const google::protobuf::Timestamp& time) {
  return absl::FromUnixSeconds(time.seconds()) +
         absl::Nanoseconds(time.nanos());
}

// Writes JSON text with optional indentation. Not thread-safe.
class JsonWriter {
 public:
  explicit JsonWriter(bool pretty) : pretty_(pretty) {}

  std::string Take() && { return std::move(out_); }

  void WriteMessage(const Message& message) {
    if (IsWellKnown(message)) {
      // Timestamp, Duration, Struct, Value, ...: protobuf's own JSON form.
      out_.append(ToJson(message, /*pretty=*/false));
      return;
    }
    const Reflection& reflection = *message.GetReflection();
    std::vector<const FieldDescriptor*> fields;
    reflection.ListFields(message, &fields);
    if (fields.empty()) {
      out_.append("{}");
      return;
    }
    Open('{');
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) out_.push_back(',');
      NewLine();
      AppendQuoted(fields[i]->json_name(), &out_);
      out_.append(pretty_ ? ": " : ":");
      WriteField(message, *fields[i]);
    }
    Close('}');
  }

  // The JSON of `tasks` inside {"tasks": ...}.
  void WriteTasks(const std::vector<v1::Task>& tasks) {
    Open('{');
    NewLine();
    out_.append(pretty_ ? "\"tasks\": " : "\"tasks\":");
    if (tasks.empty()) {
      out_.append("[]");
    } else {
      Open('[');
      for (size_t i = 0; i < tasks.size(); ++i) {
        if (i > 0) out_.push_back(',');
        NewLine();
        WriteMessage(tasks[i]);
      }
      Close(']');
    }
    Close('}');
  }

 private:
  static bool IsWellKnown(const Message& message) {
    return message.GetDescriptor()->file()->package() == "google.protobuf";
  }

  void Open(char bracket) {
    out_.push_back(bracket);
    ++depth_;
  }
  void Close(char bracket) {
    --depth_;
    NewLine();
    out_.push_back(bracket);
  }
  void NewLine() {
    if (!pretty_) return;
    out_.push_back('\n');
    out_.append(2 * depth_, ' ');
  }

  void WriteField(const Message& message, const FieldDescriptor& field) {
    const Reflection& reflection = *message.GetReflection();
    if (field.is_map()) {
      WriteMap(message, field);
    } else if (field.is_repeated()) {
      Open('[');
      const int size = reflection.FieldSize(message, &field);
      for (int i = 0; i < size; ++i) {
        if (i > 0) out_.push_back(',');
        NewLine();
        WriteValue(message, field, i);
      }
      Close(']');
    } else {
      WriteValue(message, field, -1);
    }
  }

  // Map entries sorted by key, so that the output does not depend on the
  // map's internal order.
  void WriteMap(const Message& message, const FieldDescriptor& field) {
    const Reflection& reflection = *message.GetReflection();
    const int size = reflection.FieldSize(message, &field);
    if (size == 0) {
      out_.append("{}");
      return;
    }
    const FieldDescriptor& key = *field.message_type()->map_key();
    const FieldDescriptor& value = *field.message_type()->map_value();
    std::vector<std::pair<std::string, const Message*>> entries;
    for (int i = 0; i < size; ++i) {
      const Message& entry = reflection.GetRepeatedMessage(message, &field, i);
      std::string name;
      JsonWriter key_writer(false);
      key_writer.WriteValue(entry, key, -1);
      name = std::move(key_writer).Take();
      if (!name.empty() && name.front() == '"') {
        name = name.substr(1, name.size() - 2);  // already escaped
      }
      entries.emplace_back(std::move(name), &entry);
    }
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    Open('{');
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i > 0) out_.push_back(',');
      NewLine();
      absl::StrAppend(&out_, "\"", entries[i].first, "\"",
                      pretty_ ? ": " : ":");
      WriteValue(*entries[i].second, value, -1);
    }
    Close('}');
  }

  void WriteInteger(int64_t value) {
    const uint64_t magnitude = value < 0
                                   ? uint64_t{0} - static_cast<uint64_t>(value)
                                   : static_cast<uint64_t>(value);
    if (magnitude <= kLargestSafeInteger) {
      absl::StrAppend(&out_, value);
    } else {
      absl::StrAppend(&out_, "\"", value, "\"");
    }
  }
  void WriteUnsigned(uint64_t value) {
    if (value <= kLargestSafeInteger) {
      absl::StrAppend(&out_, value);
    } else {
      absl::StrAppend(&out_, "\"", value, "\"");
    }
  }

  // Field `field` of `message`; element `index` if it is repeated (else -1).
  void WriteValue(const Message& message, const FieldDescriptor& field,
                  int index) {
    const Reflection& r = *message.GetReflection();
    const bool repeated = index >= 0;
    switch (field.cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        absl::StrAppend(&out_, repeated
                                   ? r.GetRepeatedInt32(message, &field, index)
                                   : r.GetInt32(message, &field));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        absl::StrAppend(&out_, repeated
                                   ? r.GetRepeatedUInt32(message, &field, index)
                                   : r.GetUInt32(message, &field));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        WriteInteger(repeated ? r.GetRepeatedInt64(message, &field, index)
                              : r.GetInt64(message, &field));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        WriteUnsigned(repeated ? r.GetRepeatedUInt64(message, &field, index)
                               : r.GetUInt64(message, &field));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        AppendDouble(repeated ? r.GetRepeatedDouble(message, &field, index)
                              : r.GetDouble(message, &field),
                     &out_);
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        AppendDouble(repeated ? r.GetRepeatedFloat(message, &field, index)
                              : r.GetFloat(message, &field),
                     &out_);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        out_.append((repeated ? r.GetRepeatedBool(message, &field, index)
                              : r.GetBool(message, &field))
                        ? "true"
                        : "false");
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const int number = repeated
                               ? r.GetRepeatedEnumValue(message, &field, index)
                               : r.GetEnumValue(message, &field);
        const auto* value = field.enum_type()->FindValueByNumber(number);
        if (value != nullptr) {
          AppendQuoted(value->name(), &out_);
        } else {
          absl::StrAppend(&out_, number);
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        const std::string text =
            repeated ? r.GetRepeatedString(message, &field, index)
                     : r.GetString(message, &field);
        if (field.type() == FieldDescriptor::TYPE_BYTES) {
          AppendQuoted(absl::Base64Escape(text), &out_);
        } else {
          AppendQuoted(text, &out_);
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        WriteMessage(repeated ? r.GetRepeatedMessage(message, &field, index)
                              : r.GetMessage(message, &field));
        break;
    }
  }

  const bool pretty_;
  int depth_ = 0;
  std::string out_;
};

// `text` cut to `width` characters, ending in "~" when cut.
std::string Truncate(absl::string_view text, size_t width) {
  if (text.size() <= width) return std::string(text);
  if (width == 0) return "";
  return absl::StrCat(text.substr(0, width - 1), "~");
}

// Rows of cells as columns padded to their widest cell, two spaces apart.
std::string Columns(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line.append(row[i]);
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

}  // namespace

OutputFormat OutputFormatFromName(absl::string_view name) {
  if (name == "table") return OutputFormat::kTable;
  if (name == "id") return OutputFormat::kId;
  return OutputFormat::kJson;
}

std::string MessageJson(const Message& message, bool pretty) {
  JsonWriter writer(pretty);
  writer.WriteMessage(message);
  return std::move(writer).Take();
}

std::string JsonString(absl::string_view text) {
  std::string out;
  AppendQuoted(text, &out);
  return out;
}

std::string TasksJson(const std::vector<v1::Task>& tasks, bool pretty) {
  JsonWriter writer(pretty);
  writer.WriteTasks(tasks);
  return std::move(writer).Take();
}

std::string ShortDuration(absl::Duration duration) {
  if (duration < absl::ZeroDuration()) duration = absl::ZeroDuration();
  const int64_t ms = absl::ToInt64Milliseconds(duration);
  if (ms < 1000) return absl::StrCat(ms, "ms");
  if (ms < 60'000) return absl::StrFormat("%.1fs", ms / 1000.0);
  const int64_t s = ms / 1000;
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh%02dm", s / 3600, s % 3600 / 60);
  return absl::StrFormat("%dd%02dh", s / 86400, s % 86400 / 3600);
}

std::string ProgressBar(size_t done, size_t total, size_t width) {
  const size_t filled =
      total == 0 ? width : std::min(width, done * width / total);
  return absl::StrCat("[", std::string(filled, '#'),
                      std::string(width - filled, '.'), "]");
}

std::string TasksTable(const std::vector<v1::Task>& tasks, absl::Time now) {
  // ERROR only when a task has one, to keep the usual table narrow.
  const bool errors =
      std::any_of(tasks.begin(), tasks.end(),
                  [](const auto& t) { return !t.error().message().empty(); });
  std::vector<std::vector<std::string>> rows = {
      {"ID", "FUNCTION", "POOL", "STATE", "ATTEMPT", "AGE", "RUN TIME"}};
  if (errors) rows.front().push_back("ERROR");
  for (const v1::Task& task : tasks) {
    std::string run_time = "-";
    if (task.has_started_at()) {
      const absl::Time end =
          task.has_finished_at() ? FromProtoTime(task.finished_at()) : now;
      run_time = ShortDuration(end - FromProtoTime(task.started_at()));
    }
    rows.push_back(
        {task.id(), task.function(), task.pool(), v1::State_Name(task.state()),
         absl::StrCat(task.attempt(), "/", std::max(task.max_attempts(), 1)),
         task.has_created_at()
             ? ShortDuration(now - FromProtoTime(task.created_at()))
             : "-",
         run_time});
    if (errors) rows.back().push_back(Truncate(task.error().message(), 60));
  }
  return Columns(rows);
}

std::string FunctionsTable(const v1::ListFunctionsResponse& functions) {
  std::vector<std::vector<std::string>> rows = {
      {"FUNCTION", "POOL", "DESCRIPTION"}};
  for (const v1::FunctionInfo& function : functions.functions()) {
    rows.push_back(
        {function.name(), function.default_pool(), function.description()});
  }
  std::vector<std::vector<std::string>> pools = {
      {"POOL", "KIND", "WORKERS", "MAX QUEUE"}};
  for (const v1::PoolInfo& pool : functions.pools()) {
    pools.push_back({pool.name(), pool.kind(), absl::StrCat(pool.workers()),
                     absl::StrCat(pool.max_queue())});
  }
  return absl::StrCat(Columns(rows), "\n", Columns(pools));
}

}  // namespace remex::cli
