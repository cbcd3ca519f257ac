#include "server/functions/builtin_functions.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace remex::functions {

using ::remex::executor::CancellationToken;
using ::remex::executor::FunctionRegistry;
using ::remex::executor::FunctionSpec;
using ::remex::executor::Json;
using ::remex::executor::TaskContext;

namespace {

constexpr int64_t kMaxMillis = 24 * 3600 * 1000;
constexpr int64_t kMaxPrimesN = 200'000'000;

std::string Describe(const Json& value) { return value.dump(); }

absl::Status RequireObjectOrNull(absl::string_view function, const Json& args) {
  if (args.is_null() || args.is_object()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      function, ": args must be a JSON object, got ", Describe(args)));
}

// args[field] as an integer in [min, max].
absl::StatusOr<int64_t> IntegerField(absl::string_view function,
                                     const Json& args, const char* field,
                                     int64_t min, int64_t max) {
  REMEX_RETURN_IF_ERROR(RequireObjectOrNull(function, args));
  if (args.is_null() || !args.contains(field)) {
    return absl::InvalidArgumentError(
        absl::StrCat(function, ": args.", field,
                     " is required (an integer from ", min, " to ", max, ")"));
  }
  const Json& value = args[field];
  // Whole and in range before any cast: a double outside int64's range (or
  // NaN, which a google.protobuf.Value may hold) has no integer to cast to.
  const bool integral =
      value.is_number_integer() ||
      (value.is_number_float() && std::isfinite(value.get<double>()) &&
       std::trunc(value.get<double>()) == value.get<double>());
  if (!integral || value.get<double>() < static_cast<double>(min) ||
      value.get<double>() > static_cast<double>(max)) {
    return absl::InvalidArgumentError(
        absl::StrCat(function, ": args.", field, " must be an integer from ",
                     min, " to ", max, ", got ", Describe(value)));
  }
  return static_cast<int64_t>(value.get<double>());
}

absl::Status CheckOptionalString(absl::string_view function, const Json& args,
                                 const char* field) {
  REMEX_RETURN_IF_ERROR(RequireObjectOrNull(function, args));
  if (args.is_null() || !args.contains(field) || args[field].is_string()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(function, ": args.", field,
                                                 " must be a string, got ",
                                                 Describe(args[field])));
}

absl::Status CancelledStatus() {
  return absl::CancelledError("stopped: the task was cancelled");
}

FunctionSpec Echo() {
  return {.name = "echo",
          .description = "result = args, output = input",
          .body = [](TaskContext& context) {
            context.set_result(context.args());
            context.set_output(context.input());
            return absl::OkStatus();
          }};
}

FunctionSpec Sleep() {
  return {
      .name = "sleep",
      .description = "{\"ms\": N}: sleeps N ms; stops early when cancelled",
      .check_args =
          [](const Json& args, const std::string&) {
            return IntegerField("sleep", args, "ms", 0, kMaxMillis).status();
          },
      .body =
          [](TaskContext& context) {
            const int64_t ms = context.args()["ms"].get<int64_t>();
            if (context.cancellation().WaitFor(absl::Milliseconds(ms))) {
              return CancelledStatus();
            }
            context.set_result(Json{{"slept_ms", ms}});
            return absl::OkStatus();
          }};
}

FunctionSpec Fail() {
  return {.name = "fail",
          .description = "{\"message\": S}: ends FAILED with message S",
          .check_args =
              [](const Json& args, const std::string&) {
                return CheckOptionalString("fail", args, "message");
              },
          .body =
              [](TaskContext& context) {
                const Json& args = context.args();
                std::string message = "failed as asked";
                if (args.is_object() && args.contains("message")) {
                  message = args["message"].get<std::string>();
                }
                return absl::UnknownError(message);
              }};
}

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), length));
}

FunctionSpec Sha256() {
  return {
      .name = "sha256",
      .description =
          "input bytes, or {\"text\": S}: result = hex SHA-256 digest",
      .check_args =
          [](const Json& args, const std::string&) {
            return CheckOptionalString("sha256", args, "text");
          },
      .body =
          [](TaskContext& context) {
            const Json& args = context.args();
            const bool has_text = args.is_object() && args.contains("text");
            context.set_result(Sha256Hex(
                has_text ? args["text"].get<std::string>() : context.input()));
            return absl::OkStatus();
          }};
}

// Counts primes <= n with a sieve of Eratosthenes, checking for
// cancellation between rows.
absl::StatusOr<int64_t> CountPrimes(int64_t n, const CancellationToken& token) {
  if (n < 2) return 0;
  std::vector<bool> composite(static_cast<size_t>(n) + 1, false);
  for (int64_t i = 2; i * i <= n; ++i) {
    if (composite[i]) continue;
    if (token.cancelled()) return CancelledStatus();
    for (int64_t j = i * i; j <= n; j += i) composite[j] = true;
  }
  int64_t count = 0;
  for (int64_t i = 2; i <= n; ++i) count += composite[i] ? 0 : 1;
  return count;
}

FunctionSpec Primes() {
  return {
      .name = "primes",
      .description = "{\"n\": N}: result = how many primes <= N (CPU)",
      .check_args =
          [](const Json& args, const std::string&) {
            return IntegerField("primes", args, "n", 0, kMaxPrimesN).status();
          },
      .body = [](TaskContext& context) -> absl::Status {
        REMEX_ASSIGN_OR_RETURN(const int64_t count,
                               CountPrimes(context.args()["n"].get<int64_t>(),
                                           context.cancellation()));
        context.set_result(count);
        return absl::OkStatus();
      }};
}

FunctionSpec Spin() {
  return {.name = "spin",
          .description = "{\"ms\": N}: busy CPU loop for N ms",
          .check_args =
              [](const Json& args, const std::string&) {
                return IntegerField("spin", args, "ms", 0, kMaxMillis).status();
              },
          .body =
              [](TaskContext& context) {
                const int64_t ms = context.args()["ms"].get<int64_t>();
                const auto end = std::chrono::steady_clock::now() +
                                 std::chrono::milliseconds(ms);
                uint64_t iterations = 0;
                while (std::chrono::steady_clock::now() < end) {
                  if (context.cancelled()) return CancelledStatus();
                  ++iterations;
                }
                context.set_result(Json{{"spun_ms", ms}});
                return absl::OkStatus();
              }};
}

// A real invalid write, the crash the test function exists for; UBSan (in
// sanitizer builds) is told not to stop it first.
__attribute__((no_sanitize("undefined"))) void WriteThroughNull() {
  volatile int* null_pointer = nullptr;
  *null_pointer = 1;
}

[[noreturn]] void CrashAs(const std::string& how) {
  if (how == "segv") {
    WriteThroughNull();
  } else if (how == "abort") {
    std::abort();
  } else if (how == "exit") {
    _exit(3);
  }
  // "oom": allocate and touch memory until the allocator or the kernel gives
  // up.
  std::vector<char*> blocks;
  for (;;) {
    char* block = new char[64 << 20];
    for (size_t i = 0; i < (64 << 20); i += 4096) block[i] = 1;
    blocks.push_back(block);
  }
}

FunctionSpec Crash() {
  return {
      .name = "crash",
      .description =
          "{\"how\": \"segv\"|\"abort\"|\"exit\"|\"oom\"}: "
          "kills the process running it (tests only)",
      .check_args = [](const Json& args, const std::string&) -> absl::Status {
        REMEX_RETURN_IF_ERROR(RequireObjectOrNull("crash", args));
        const Json how =
            args.is_object() && args.contains("how") ? args["how"] : Json();
        if (how == "segv" || how == "abort" || how == "exit" || how == "oom") {
          return absl::OkStatus();
        }
        return absl::InvalidArgumentError(
            absl::StrCat("crash: args.how must be one of \"segv\", \"abort\", "
                         "\"exit\", \"oom\", got ",
                         Describe(how)));
      },
      .body = [](TaskContext& context) -> absl::Status {
        CrashAs(context.args()["how"].get<std::string>());
      }};
}

FunctionSpec IgnoreCancel() {
  return {.name = "ignore_cancel",
          .description =
              "{\"ms\": N}: sleeps N ms and ignores cancellation, "
              "like a badly behaved function (tests only)",
          .check_args =
              [](const Json& args, const std::string&) {
                return IntegerField("ignore_cancel", args, "ms", 0, kMaxMillis)
                    .status();
              },
          .body =
              [](TaskContext& context) {
                absl::SleepFor(
                    absl::Milliseconds(context.args()["ms"].get<int64_t>()));
                return absl::OkStatus();
              }};
}

}  // namespace

absl::Status RegisterBuiltinFunctions(const BuiltinOptions& options,
                                      FunctionRegistry& registry) {
  for (FunctionSpec spec :
       {Echo(), Sleep(), Fail(), Sha256(), Primes(), Spin()}) {
    REMEX_RETURN_IF_ERROR(registry.Register(std::move(spec)));
  }
  if (options.enable_test_functions) {
    REMEX_RETURN_IF_ERROR(registry.Register(Crash()));
    REMEX_RETURN_IF_ERROR(registry.Register(IgnoreCancel()));
  }
  return absl::OkStatus();
}

}  // namespace remex::functions
