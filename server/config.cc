#include "server/config.h"

#include <libpq-fe.h>
#include <limits.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace remex::server {
namespace {

constexpr int64_t kMaxWorkers = 4096;
constexpr int64_t kMaxPollers = 256;

absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("config: ", where, ": ", what));
}

absl::Status CheckKeys(const YAML::Node& node, absl::string_view where,
                       std::initializer_list<absl::string_view> allowed) {
  if (!node.IsMap()) return Invalid(where, "must be a mapping");
  for (const auto& entry : node) {
    // A list or mapping as a key (YAML allows it) names no setting.
    if (!entry.first.IsScalar()) {
      return Invalid(where, "keys must be plain names");
    }
    const std::string key = entry.first.as<std::string>();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return Invalid(where, absl::StrCat("unknown key '", key, "'"));
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::StatusOr<T> Scalar(const YAML::Node& node, absl::string_view where) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    return Invalid(where, absl::StrCat("bad value '", YAML::Dump(node), "'"));
  }
}

// A whole number in [1, max].
absl::StatusOr<int64_t> PositiveInteger(
    const YAML::Node& node, absl::string_view where,
    int64_t max = std::numeric_limits<int64_t>::max()) {
  REMEX_ASSIGN_OR_RETURN(const int64_t value, Scalar<int64_t>(node, where));
  if (value <= 0 || value > max) {
    return Invalid(where, absl::StrCat("must be from 1 to ", max));
  }
  return value;
}

absl::StatusOr<absl::Duration> ParseDurationNode(const YAML::Node& node,
                                                 absl::string_view where) {
  REMEX_ASSIGN_OR_RETURN(const std::string text,
                         Scalar<std::string>(node, where));
  absl::Duration duration;
  double seconds = 0;
  if (absl::ParseDuration(text, &duration) &&
      duration >= absl::ZeroDuration()) {
    return duration;
  }
  std::istringstream stream(text);
  if (stream >> seconds && stream.eof() && seconds >= 0) {
    return absl::Seconds(seconds);
  }
  return Invalid(where,
                 absl::StrCat("bad duration '", text,
                              "' (use e.g. \"500ms\", \"10s\", \"2m\")"));
}

// The keys only process pools take; on a thread pool they are an error
// (a thread cannot be killed or limited).
absl::Status ParseProcessLimits(const YAML::Node& node,
                                const std::string& where,
                                executor::PoolConfig& pool) {
  for (const char* key :
       {"cancel_grace", "memory_limit_bytes", "cpu_limit_seconds",
        "max_open_files", "max_tasks_per_worker"}) {
    if (node[key] && pool.kind != executor::PoolKind::kProcess) {
      return Invalid(absl::StrCat(where, ".", key),
                     "only process pools take it (this pool is kind: thread)");
    }
  }
  if (node["cancel_grace"]) {
    REMEX_ASSIGN_OR_RETURN(
        pool.cancel_grace,
        ParseDurationNode(node["cancel_grace"], where + ".cancel_grace"));
  }
  // Below this a worker cannot even load the server binary.
  constexpr int64_t kMinMemoryLimit = 64 << 20;
  if (node["memory_limit_bytes"]) {
    REMEX_ASSIGN_OR_RETURN(pool.memory_limit_bytes,
                           PositiveInteger(node["memory_limit_bytes"],
                                           where + ".memory_limit_bytes"));
    if (pool.memory_limit_bytes < kMinMemoryLimit) {
      return Invalid(
          where + ".memory_limit_bytes",
          absl::StrCat("must be at least ", kMinMemoryLimit, " (64 MiB)"));
    }
  }
  if (node["cpu_limit_seconds"]) {
    REMEX_ASSIGN_OR_RETURN(pool.cpu_limit_seconds,
                           PositiveInteger(node["cpu_limit_seconds"],
                                           where + ".cpu_limit_seconds"));
  }
  if (node["max_open_files"]) {
    // The worker itself needs a few (stdio, its channel, the binary).
    REMEX_ASSIGN_OR_RETURN(
        pool.max_open_files,
        PositiveInteger(node["max_open_files"], where + ".max_open_files"));
    if (pool.max_open_files < 16) {
      return Invalid(where + ".max_open_files", "must be at least 16");
    }
  }
  if (node["max_tasks_per_worker"]) {
    REMEX_ASSIGN_OR_RETURN(pool.max_tasks_per_worker,
                           PositiveInteger(node["max_tasks_per_worker"],
                                           where + ".max_tasks_per_worker"));
  }
  return absl::OkStatus();
}

absl::StatusOr<executor::PoolConfig> ParsePool(const YAML::Node& node,
                                               size_t index) {
  const std::string where = absl::StrCat("pools[", index, "]");
  REMEX_RETURN_IF_ERROR(
      CheckKeys(node, where,
                {"name", "kind", "workers", "max_queue", "cancel_grace",
                 "memory_limit_bytes", "cpu_limit_seconds", "max_open_files",
                 "max_tasks_per_worker"}));
  executor::PoolConfig pool;
  if (!node["name"]) return Invalid(where, "needs a name");
  REMEX_ASSIGN_OR_RETURN(pool.name,
                         Scalar<std::string>(node["name"], where + ".name"));
  if (node["kind"]) {
    REMEX_ASSIGN_OR_RETURN(const std::string kind,
                           Scalar<std::string>(node["kind"], where + ".kind"));
    REMEX_ASSIGN_OR_RETURN(pool.kind, executor::ParsePoolKind(kind));
  }
  if (node["workers"]) {
    REMEX_ASSIGN_OR_RETURN(
        pool.workers,
        PositiveInteger(node["workers"], where + ".workers", kMaxWorkers));
  }
  if (node["max_queue"]) {
    REMEX_ASSIGN_OR_RETURN(
        pool.max_queue,
        PositiveInteger(node["max_queue"], where + ".max_queue"));
  }
  REMEX_RETURN_IF_ERROR(ParseProcessLimits(node, where, pool));
  return pool;
}

absl::Status ParsePools(const YAML::Node& node, ServerConfig& config) {
  if (!node.IsSequence() || node.size() == 0) {
    return Invalid("pools", "must be a non-empty list");
  }
  config.executor.pools.clear();
  for (size_t i = 0; i < node.size(); ++i) {
    REMEX_ASSIGN_OR_RETURN(executor::PoolConfig pool, ParsePool(node[i], i));
    config.executor.pools.push_back(std::move(pool));
  }
  return absl::OkStatus();
}

absl::Status ParseRetention(const YAML::Node& node, ServerConfig& config) {
  REMEX_RETURN_IF_ERROR(
      CheckKeys(node, "retention", {"ttl", "max_tasks", "max_bytes"}));
  executor::ExecutorOptions& options = config.executor;
  if (node["ttl"]) {
    REMEX_ASSIGN_OR_RETURN(options.default_ttl,
                           ParseDurationNode(node["ttl"], "retention.ttl"));
  }
  if (node["max_tasks"]) {
    REMEX_ASSIGN_OR_RETURN(
        options.retention.max_tasks,
        PositiveInteger(node["max_tasks"], "retention.max_tasks"));
  }
  if (node["max_bytes"]) {
    REMEX_ASSIGN_OR_RETURN(
        options.retention.max_bytes,
        PositiveInteger(node["max_bytes"], "retention.max_bytes"));
  }
  return absl::OkStatus();
}

// Relative paths are taken from `config_dir` (empty: the working directory).
absl::Status ParsePlugins(const YAML::Node& node, absl::string_view config_dir,
                          ServerConfig& config) {
  if (!node.IsSequence()) return Invalid("plugins", "must be a list of paths");
  config.plugins.clear();
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string where = absl::StrCat("plugins[", i, "]");
    REMEX_ASSIGN_OR_RETURN(const std::string path,
                           Scalar<std::string>(node[i], where));
    if (path.empty()) return Invalid(where, "empty path");
    config.plugins.push_back(
        (std::filesystem::path(std::string(config_dir)) / path).string());
  }
  return absl::OkStatus();
}

// A file path in the config; relative paths are to `config_dir`.
absl::StatusOr<std::string> ParsePath(const YAML::Node& node,
                                      absl::string_view where,
                                      absl::string_view config_dir) {
  REMEX_ASSIGN_OR_RETURN(const std::string path,
                         Scalar<std::string>(node, where));
  if (path.empty()) return Invalid(where, "empty path");
  return (std::filesystem::path(std::string(config_dir)) / path).string();
}

absl::StatusOr<std::vector<std::string>> StringList(const YAML::Node& node,
                                                    absl::string_view where) {
  if (!node.IsSequence()) return Invalid(where, "must be a list of strings");
  std::vector<std::string> strings;
  for (size_t i = 0; i < node.size(); ++i) {
    REMEX_ASSIGN_OR_RETURN(
        std::string value,
        Scalar<std::string>(node[i], absl::StrCat(where, "[", i, "]")));
    strings.push_back(std::move(value));
  }
  return strings;
}

absl::Status ParseEnv(const YAML::Node& node, absl::string_view where,
                      std::map<std::string, std::string>& env) {
  if (!node.IsMap()) return Invalid(where, "must be a mapping NAME: VALUE");
  for (const auto& entry : node) {
    REMEX_ASSIGN_OR_RETURN(std::string name,
                           Scalar<std::string>(entry.first, where));
    REMEX_ASSIGN_OR_RETURN(
        env[name],
        Scalar<std::string>(entry.second, absl::StrCat(where, ".", name)));
  }
  return absl::OkStatus();
}

absl::StatusOr<functions::CommandFunctionConfig> ParseCommandFunction(
    const YAML::Node& node, size_t index) {
  const std::string where = absl::StrCat("functions[", index, "]");
  REMEX_RETURN_IF_ERROR(
      CheckKeys(node, where,
                {"name", "description", "command", "pool", "run_timeout",
                 "cancel_grace", "env", "working_dir", "max_output_bytes",
                 "allow_option_values", "user", "group"}));
  functions::CommandFunctionConfig function;
  if (!node["name"]) return Invalid(where, "needs a name");
  if (!node["command"]) return Invalid(where, "needs a command");
  REMEX_ASSIGN_OR_RETURN(function.name,
                         Scalar<std::string>(node["name"], where + ".name"));
  REMEX_ASSIGN_OR_RETURN(function.command,
                         StringList(node["command"], where + ".command"));
  if (node["description"]) {
    REMEX_ASSIGN_OR_RETURN(
        function.description,
        Scalar<std::string>(node["description"], where + ".description"));
  }
  if (node["pool"]) {
    REMEX_ASSIGN_OR_RETURN(function.pool,
                           Scalar<std::string>(node["pool"], where + ".pool"));
  }
  if (node["run_timeout"]) {
    REMEX_ASSIGN_OR_RETURN(
        function.run_timeout,
        ParseDurationNode(node["run_timeout"], where + ".run_timeout"));
  }
  if (node["cancel_grace"]) {
    REMEX_ASSIGN_OR_RETURN(
        function.cancel_grace,
        ParseDurationNode(node["cancel_grace"], where + ".cancel_grace"));
  }
  if (node["env"]) {
    REMEX_RETURN_IF_ERROR(ParseEnv(node["env"], where + ".env", function.env));
  }
  if (node["working_dir"]) {
    REMEX_ASSIGN_OR_RETURN(
        function.working_dir,
        Scalar<std::string>(node["working_dir"], where + ".working_dir"));
  }
  if (node["max_output_bytes"]) {
    REMEX_ASSIGN_OR_RETURN(
        function.max_output_bytes,
        PositiveInteger(node["max_output_bytes"], where + ".max_output_bytes"));
  }
  if (node["allow_option_values"]) {
    REMEX_ASSIGN_OR_RETURN(function.allow_option_values,
                           Scalar<bool>(node["allow_option_values"],
                                        where + ".allow_option_values"));
  }
  for (auto [key, field] : {std::pair{"user", &function.user},
                            std::pair{"group", &function.group}}) {
    if (node[key]) {
      REMEX_ASSIGN_OR_RETURN(
          *field,
          Scalar<std::string>(node[key], absl::StrCat(where, ".", key)));
    }
  }
  // Checked now, so that a bad command stops the server at start.
  if (absl::Status status = functions::MakeCommandFunction(function).status();
      !status.ok()) {
    return Invalid(where, status.message());
  }
  return function;
}

absl::Status ParseCommandFunctions(const YAML::Node& node,
                                   ServerConfig& config) {
  if (!node.IsSequence()) return Invalid("functions", "must be a list");
  config.command_functions.clear();
  for (size_t i = 0; i < node.size(); ++i) {
    REMEX_ASSIGN_OR_RETURN(functions::CommandFunctionConfig function,
                           ParseCommandFunction(node[i], i));
    config.command_functions.push_back(std::move(function));
  }
  return absl::OkStatus();
}

absl::Status ParseRoot(const YAML::Node& root, absl::string_view config_dir,
                       ServerConfig& config) {
  if (root.IsNull()) return absl::OkStatus();
  REMEX_RETURN_IF_ERROR(
      CheckKeys(root, "top level",
                {"pools", "retention", "shutdown_grace", "max_connection_idle",
                 "pollers", "plugins", "functions", "tls_cert", "tls_key",
                 "tls_client_ca", "auth", "insecure", "store", "replica_name",
                 "replica_lease", "memory_budget", "log_format", "log_level"}));
  if (root["pools"]) REMEX_RETURN_IF_ERROR(ParsePools(root["pools"], config));
  if (root["retention"]) {
    REMEX_RETURN_IF_ERROR(ParseRetention(root["retention"], config));
  }
  if (root["shutdown_grace"]) {
    REMEX_ASSIGN_OR_RETURN(
        config.shutdown_grace,
        ParseDurationNode(root["shutdown_grace"], "shutdown_grace"));
  }
  if (root["replica_lease"]) {
    REMEX_ASSIGN_OR_RETURN(
        config.replica_lease,
        ParseDurationNode(root["replica_lease"], "replica_lease"));
  }
  if (root["memory_budget"]) {
    REMEX_ASSIGN_OR_RETURN(
        const std::string text,
        Scalar<std::string>(root["memory_budget"], "memory_budget"));
    absl::StatusOr<size_t> bytes = ParseByteSize(text);
    if (!bytes.ok()) return Invalid("memory_budget", bytes.status().message());
    config.executor.memory_budget = *bytes;
  }
  if (root["max_connection_idle"]) {
    REMEX_ASSIGN_OR_RETURN(
        config.max_connection_idle,
        ParseDurationNode(root["max_connection_idle"], "max_connection_idle"));
  }
  if (root["pollers"]) {
    REMEX_ASSIGN_OR_RETURN(
        config.pollers,
        PositiveInteger(root["pollers"], "pollers", kMaxPollers));
  }
  if (root["plugins"]) {
    REMEX_RETURN_IF_ERROR(ParsePlugins(root["plugins"], config_dir, config));
  }
  if (root["functions"]) {
    REMEX_RETURN_IF_ERROR(ParseCommandFunctions(root["functions"], config));
  }
  if (root["auth"]) {
    REMEX_ASSIGN_OR_RETURN(config.auth_file,
                           ParsePath(root["auth"], "auth", config_dir));
  }
  if (root["insecure"]) {
    REMEX_ASSIGN_OR_RETURN(config.insecure,
                           Scalar<bool>(root["insecure"], "insecure"));
  }
  for (auto [key, value] : {std::pair{"store", &config.store},
                            std::pair{"replica_name", &config.replica_name}}) {
    if (root[key]) {
      REMEX_ASSIGN_OR_RETURN(*value, Scalar<std::string>(root[key], key));
      if (value->empty()) return Invalid(key, "must not be empty");
    }
  }
  if (root["log_format"]) {
    REMEX_ASSIGN_OR_RETURN(
        const std::string format,
        Scalar<std::string>(root["log_format"], "log_format"));
    absl::StatusOr<log::Format> parsed = log::ParseFormat(format);
    if (!parsed.ok()) return Invalid("log_format", parsed.status().message());
    config.log_format = *parsed;
  }
  if (root["log_level"]) {
    REMEX_ASSIGN_OR_RETURN(const std::string level,
                           Scalar<std::string>(root["log_level"], "log_level"));
    absl::StatusOr<log::Level> parsed = log::ParseLevel(level);
    if (!parsed.ok()) return Invalid("log_level", parsed.status().message());
    config.log_level = *parsed;
  }
  for (auto [key, path] : {std::pair{"tls_cert", &config.tls_cert},
                           std::pair{"tls_key", &config.tls_key},
                           std::pair{"tls_client_ca", &config.tls_client_ca}}) {
    if (root[key]) {
      REMEX_ASSIGN_OR_RETURN(*path, ParsePath(root[key], key, config_dir));
    }
  }
  return absl::OkStatus();
}

// The machine's host name, or "localhost" if it has none.
std::string HostName() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') {
    return "localhost";
  }
  return name;
}

// OK for "memory" or a connection string libpq accepts, else why not.
absl::Status CheckStore(const std::string& store) {
  if (store == "memory") return absl::OkStatus();
  if (store.empty()) {
    return absl::InvalidArgumentError(
        "empty (use memory or a postgresql:// URL)");
  }
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(store.c_str(), &error);
  if (options != nullptr) {
    PQconninfoFree(options);
    return absl::OkStatus();
  }
  // libpq's message quotes the part it could not read, not the whole
  // string (which may hold a password).
  std::string reason = error != nullptr
                           ? std::string(absl::StripAsciiWhitespace(error))
                           : "libpq could not parse it";
  PQfreemem(error);
  return absl::InvalidArgumentError(absl::StrCat(
      "neither memory nor a PostgreSQL connection string (postgresql://USER@"
      "HOST:PORT/DB or key=value pairs): ",
      reason));
}

}  // namespace

ServerConfig DefaultConfig() {
  ServerConfig config;
  const int cores =
      std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  // Like Python's ThreadPoolExecutor: room for I/O-bound tasks, bounded.
  config.executor.pools.push_back(
      executor::PoolConfig{.name = "default",
                           .kind = executor::PoolKind::kThread,
                           .workers = std::min(32, cores + 4),
                           .max_queue = 100000});
  // Like Python's ProcessPoolExecutor: one worker process per core.
  config.executor.pools.push_back(
      executor::PoolConfig{.name = "process",
                           .kind = executor::PoolKind::kProcess,
                           .workers = cores,
                           .max_queue = 100000});
  config.executor.memory_budget = DefaultMemoryBudget(AvailableMemoryBytes());
  return config;
}

namespace {

// The first whole number in the file at `path`; nullopt if there is none
// (missing file, or "max": no limit).
std::optional<uint64_t> ReadNumber(const std::string& path) {
  std::ifstream file(path);
  uint64_t number = 0;
  if (!(file >> number)) return std::nullopt;
  return number;
}

// MemTotal of a /proc/meminfo, in bytes.
std::optional<uint64_t> ReadMemTotal(const std::string& path) {
  std::ifstream file(path);
  std::string key;
  uint64_t kib = 0;
  while (file >> key >> kib) {
    if (key == "MemTotal:") return kib * 1024;
    file.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return std::nullopt;
}

}  // namespace

size_t AvailableMemoryBytes(const std::string& root) {
  const std::filesystem::path base(root);
  const std::optional<uint64_t> machine = ReadMemTotal(base / "proc/meminfo");
  // v1 reports "no limit" as a huge number: taken only below the machine's.
  std::optional<uint64_t> cgroup =
      ReadNumber(base / "sys/fs/cgroup/memory.max");
  if (!cgroup.has_value()) {
    cgroup = ReadNumber(base / "sys/fs/cgroup/memory/memory.limit_in_bytes");
  }
  if (cgroup.has_value() && *cgroup > 0 &&
      (!machine.has_value() || *cgroup < *machine)) {
    return *cgroup;
  }
  return machine.value_or(0);
}

size_t DefaultMemoryBudget(size_t available_bytes) {
  constexpr size_t kMiB = size_t{1} << 20;
  if (available_bytes == 0) return 1024 * kMiB;
  return std::max(64 * kMiB, available_bytes / 2);
}

absl::StatusOr<size_t> ParseByteSize(absl::string_view text) {
  const absl::string_view original = text;
  text = absl::StripAsciiWhitespace(text);
  size_t digits = 0;
  while (digits < text.size() &&
         (absl::ascii_isdigit(text[digits]) || text[digits] == '.')) {
    ++digits;
  }
  double number = 0;
  const absl::string_view unit =
      absl::StripAsciiWhitespace(text.substr(digits));
  static const auto* const kUnits =
      new std::map<std::string, double, std::less<>>{
          {"", 1},         {"B", 1},       {"KiB", 0x1p10}, {"Ki", 0x1p10},
          {"MiB", 0x1p20}, {"Mi", 0x1p20}, {"GiB", 0x1p30}, {"Gi", 0x1p30},
          {"TiB", 0x1p40}, {"Ti", 0x1p40}};
  const auto scale = kUnits->find(unit);
  if (digits == 0 || !absl::SimpleAtod(text.substr(0, digits), &number) ||
      scale == kUnits->end() || number * scale->second < 1 ||
      number * scale->second >= 0x1p63) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad size '", original,
        "': use a number of bytes, or one with KiB, MiB, GiB or TiB (e.g. "
        "512MiB, 2GiB)"));
  }
  return static_cast<size_t>(number * scale->second);
}

absl::StatusOr<ServerConfig> ParseConfig(absl::string_view text,
                                         ServerConfig base,
                                         absl::string_view config_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: not valid JSON or YAML: ", e.what()));
  }
  // Every value is read through Scalar(), which turns yaml-cpp's exceptions
  // into errors; this catches what a shape nobody thought of still throws,
  // so that a bad file is an error, never a crash of the server.
  try {
    REMEX_RETURN_IF_ERROR(ParseRoot(root, config_dir, base));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: cannot read it: ", e.what()));
  }
  return base;
}

absl::StatusOr<ServerConfig> LoadConfigFile(const std::string& path,
                                            ServerConfig base) {
  std::ifstream file(path);
  if (!file) {
    return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  }
  std::stringstream text;
  text << file.rdbuf();
  std::error_code error;
  const std::filesystem::path absolute = std::filesystem::absolute(path, error);
  return ParseConfig(text.str(), std::move(base),
                     error ? "" : absolute.parent_path().string());
}

absl::Status CheckTlsConfig(const ServerConfig& config) {
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both a certificate and its key: give --tls-cert and "
        "--tls-key (config tls_cert, tls_key) together");
  }
  if (!config.tls_client_ca.empty() && config.tls_cert.empty()) {
    return absl::InvalidArgumentError(
        "--tls-client-ca (config tls_client_ca) needs TLS: give --tls-cert "
        "and --tls-key too");
  }
  return absl::OkStatus();
}

absl::Status ResolveStoreConfig(const StoreFlags& flags, const char* env_store,
                                ServerConfig& config) {
  // Where the store came from, for the error message.
  absl::string_view source = "config store";
  if (flags.store.has_value()) {
    config.store = *flags.store;
    source = "--store";
  } else if (env_store != nullptr && env_store[0] != '\0') {
    config.store = env_store;
    source = "--store (from $REMEX_STORE)";
  }
  if (absl::Status store = CheckStore(config.store); !store.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", store.message()));
  }
  if (flags.replica_name.has_value()) {
    if (flags.replica_name->empty()) {
      return absl::InvalidArgumentError("--replica-name: must not be empty");
    }
    config.replica_name = *flags.replica_name;
  }
  if (config.replica_name.empty()) config.replica_name = HostName();
  if (flags.replica_lease.has_value()) {
    config.replica_lease = *flags.replica_lease;
  }
  if (config.replica_lease < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--replica-lease (config replica_lease): must be at "
                     "least 1s, got ",
                     absl::FormatDuration(config.replica_lease)));
  }
  return absl::OkStatus();
}

}  // namespace remex::server
