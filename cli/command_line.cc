#include "cli/command_line.h"

#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "remex/json.h"

namespace remex::cli {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  return std::string(std::istreambuf_iterator<char>(file), {});
}

// Checks `value` for a flag of `kind`; returns what to store.
absl::StatusOr<std::string> CheckValue(FlagKind kind, std::string value) {
  bool ok = true;
  switch (kind) {
    case FlagKind::kSwitch:
    case FlagKind::kString:
      break;
    case FlagKind::kInt: {
      int32_t number;
      ok = absl::SimpleAtoi(value, &number);
      break;
    }
    case FlagKind::kDuration: {
      absl::Duration duration;
      ok = absl::ParseDuration(value, &duration);
      break;
    }
    case FlagKind::kJson: {
      const absl::Status status = ParseJson(value).status();
      if (!status.ok()) return status;
      break;
    }
    case FlagKind::kState: {
      v1::State state;
      ok = v1::State_Parse(absl::AsciiStrToUpper(value), &state);
      break;
    }
    case FlagKind::kKeyValue:
      ok = absl::StrContains(value, '=');
      break;
    case FlagKind::kFile:
      return ReadFile(value);
  }
  if (!ok) return absl::InvalidArgumentError(absl::StrCat("bad value ", value));
  return value;
}

const FlagSpec* FindFlag(const std::vector<FlagSpec>* flags,
                         absl::string_view name) {
  if (flags == nullptr) return nullptr;
  for (const FlagSpec& flag : *flags) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

}  // namespace

// Walks the arguments once, filling a CommandLine.
class Parser {
 public:
  Parser(std::span<const absl::string_view> args,
         const std::vector<FlagSpec>& global_flags,
         const FlagsOfCommand& flags_of_command)
      : args_(args),
        global_flags_(global_flags),
        flags_of_command_(flags_of_command) {}

  absl::StatusOr<CommandLine> Parse() {
    for (next_ = 0; next_ < args_.size();) {
      const absl::string_view arg = args_[next_++];
      const absl::Status status = absl::StartsWith(arg, "-") && arg != "-"
                                      ? ParseFlag(arg)
                                      : ParseWord(arg);
      if (!status.ok()) return status;
    }
    return std::move(line_);
  }

 private:
  absl::Status ParseWord(absl::string_view word) {
    if (!line_.command_.empty()) {
      line_.positional_.emplace_back(word);
      return absl::OkStatus();
    }
    command_flags_ = flags_of_command_(word);
    if (command_flags_ == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown command '", word, "'"));
    }
    line_.command_ = std::string(word);
    return absl::OkStatus();
  }

  absl::Status ParseFlag(absl::string_view arg) {
    if (arg == "-h") arg = "--help";
    if (!absl::ConsumePrefix(&arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg));
    }
    const size_t equals = arg.find('=');
    const absl::string_view name = arg.substr(0, equals);
    const FlagSpec* spec = FindFlag(&global_flags_, name);
    if (spec == nullptr) spec = FindFlag(command_flags_, name);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    absl::StatusOr<std::string> value = FlagValue(*spec, arg, equals);
    if (!value.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": ", value.status().message()));
    }
    line_.values_[std::string(name)].push_back(*std::move(value));
    return absl::OkStatus();
  }

  // The checked value of flag `spec` written as `arg` ("name[=value]").
  absl::StatusOr<std::string> FlagValue(const FlagSpec& spec,
                                        absl::string_view arg, size_t equals) {
    const bool inline_value = equals != absl::string_view::npos;
    if (spec.kind == FlagKind::kSwitch) {
      if (inline_value) return absl::InvalidArgumentError("takes no value");
      return std::string();
    }
    if (inline_value)
      return CheckValue(spec.kind, std::string(arg.substr(equals + 1)));
    if (next_ == args_.size())
      return absl::InvalidArgumentError("needs a value");
    return CheckValue(spec.kind, std::string(args_[next_++]));
  }

  const std::span<const absl::string_view> args_;
  const std::vector<FlagSpec>& global_flags_;
  const FlagsOfCommand& flags_of_command_;
  const std::vector<FlagSpec>* command_flags_ = nullptr;
  size_t next_ = 0;
  CommandLine line_;
};

bool CommandLine::Has(absl::string_view flag) const {
  return values_.find(flag) != values_.end();
}

std::string CommandLine::String(absl::string_view flag,
                                std::string fallback) const {
  const auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> CommandLine::All(absl::string_view flag) const {
  const auto it = values_.find(flag);
  return it == values_.end() ? std::vector<std::string>() : it->second;
}

int32_t CommandLine::Int(absl::string_view flag) const {
  int32_t number = 0;
  (void)absl::SimpleAtoi(String(flag, "0"), &number);
  return number;
}

absl::Duration CommandLine::Duration(absl::string_view flag,
                                     absl::Duration fallback) const {
  if (!Has(flag)) return fallback;
  absl::Duration duration = fallback;
  (void)absl::ParseDuration(String(flag), &duration);
  return duration;
}

v1::State CommandLine::State(absl::string_view flag) const {
  v1::State state = v1::STATE_UNSPECIFIED;
  (void)v1::State_Parse(absl::AsciiStrToUpper(String(flag)), &state);
  return state;
}

absl::StatusOr<CommandLine> ParseCommandLine(
    std::span<const absl::string_view> args,
    const std::vector<FlagSpec>& global_flags,
    const FlagsOfCommand& flags_of_command) {
  return Parser(args, global_flags, flags_of_command).Parse();
}

}  // namespace remex::cli
