#include "server/config.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/executor/pool.h"
#include "tests/testing/server_test.h"
#include "tests/testing/subprocess.h"

namespace remex::server {
namespace {

using executor::PoolKind;
using ::testing::HasSubstr;
using ::testing::Not;

// The config example of design.md.
constexpr char kDesignExampleJson[] = R"(
{"pools": [{"name": "default", "kind": "thread",  "workers": 4, "max_queue": 100000},
           {"name": "process", "kind": "process", "workers": 2}]}
)";

constexpr char kDesignExampleYaml[] = R"(
pools:
  - name: default
    kind: thread
    workers: 4
    max_queue: 100000
  - name: process
    kind: process
    workers: 2
)";

// The INVALID_ARGUMENT message of parsing `text`, or a failure if it parses.
std::string ParseError(const std::string& text) {
  absl::StatusOr<ServerConfig> config = ParseConfig(text, DefaultConfig());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << text;
  return std::string(config.status().message());
}

TEST(ConfigTest, DefaultConfigHasAThreadPoolDefaultAndAProcessPool) {
  const ServerConfig config = DefaultConfig();
  // Loopback: a server without authentication stays off the network.
  EXPECT_EQ(config.listen, "127.0.0.1:50051");
  EXPECT_EQ(config.metrics_listen, "127.0.0.1:9464");
  ASSERT_EQ(config.executor.pools.size(), 2u);
  const executor::PoolConfig& pool = config.executor.pools[0];
  EXPECT_EQ(pool.name, "default");
  EXPECT_EQ(pool.kind, PoolKind::kThread);
  EXPECT_GT(pool.workers, 0);
  EXPECT_GT(pool.max_queue, 0u);
  const executor::PoolConfig& process = config.executor.pools[1];
  EXPECT_EQ(process.name, "process");
  EXPECT_EQ(process.kind, PoolKind::kProcess);
  EXPECT_EQ(process.workers,
            std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  EXPECT_EQ(process.cancel_grace, absl::Seconds(1));
  EXPECT_EQ(process.memory_limit_bytes, 0);
  EXPECT_GT(config.executor.default_ttl, absl::ZeroDuration());
  EXPECT_GT(config.shutdown_grace, absl::ZeroDuration());
  EXPECT_FALSE(config.enable_test_functions);
}

void ExpectDesignExamplePools(const ServerConfig& config) {
  ASSERT_EQ(config.executor.pools.size(), 2u);
  const executor::PoolConfig& thread = config.executor.pools[0];
  EXPECT_EQ(thread.name, "default");
  EXPECT_EQ(thread.kind, PoolKind::kThread);
  EXPECT_EQ(thread.workers, 4);
  EXPECT_EQ(thread.max_queue, 100000u);
  const executor::PoolConfig& process = config.executor.pools[1];
  EXPECT_EQ(process.name, "process");
  EXPECT_EQ(process.kind, PoolKind::kProcess);
  EXPECT_EQ(process.workers, 2);
  EXPECT_EQ(process.max_queue, executor::PoolConfig().max_queue);
}

TEST(ConfigTest, ParsesTheDesignExampleAsJson) {
  absl::StatusOr<ServerConfig> config =
      ParseConfig(kDesignExampleJson, DefaultConfig());
  ASSERT_TRUE(config.ok()) << config.status();
  ExpectDesignExamplePools(*config);
}

TEST(ConfigTest, ParsesTheDesignExampleAsYaml) {
  absl::StatusOr<ServerConfig> config =
      ParseConfig(kDesignExampleYaml, DefaultConfig());
  ASSERT_TRUE(config.ok()) << config.status();
  ExpectDesignExamplePools(*config);
}

TEST(ConfigTest, ParsesRetentionGraceAndPollers) {
  absl::StatusOr<ServerConfig> config = ParseConfig(R"(
retention: {ttl: "90s", max_tasks: 1000, max_bytes: 1048576}
shutdown_grace: 500ms
pollers: 3
)",
                                                    DefaultConfig());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->executor.default_ttl, absl::Seconds(90));
  EXPECT_EQ(config->executor.retention.max_tasks, 1000u);
  EXPECT_EQ(config->executor.retention.max_bytes, 1048576u);
  EXPECT_EQ(config->shutdown_grace, absl::Milliseconds(500));
  EXPECT_EQ(config->pollers, 3);
  // Pools were not mentioned: the base's stay.
  EXPECT_EQ(config->executor.pools.size(),
            DefaultConfig().executor.pools.size());
}

TEST(ConfigTest, ProcessPoolsTakeLimits) {
  absl::StatusOr<ServerConfig> config = ParseConfig(R"(
pools:
  - name: sandbox
    kind: process
    workers: 3
    cancel_grace: 250ms
    memory_limit_bytes: 536870912
    cpu_limit_seconds: 30
    max_open_files: 256
    max_tasks_per_worker: 1000
)",
                                                    DefaultConfig());
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->executor.pools.size(), 1u);
  const executor::PoolConfig& pool = config->executor.pools[0];
  EXPECT_EQ(pool.kind, PoolKind::kProcess);
  EXPECT_EQ(pool.cancel_grace, absl::Milliseconds(250));
  EXPECT_EQ(pool.memory_limit_bytes, 536870912);
  EXPECT_EQ(pool.cpu_limit_seconds, 30);
  EXPECT_EQ(pool.max_open_files, 256);
  EXPECT_EQ(pool.max_tasks_per_worker, 1000);
}

TEST(ConfigTest, ProcessLimitsOnAThreadPoolOrOutOfRangeAreRefused) {
  EXPECT_THAT(
      ParseError(R"({"pools": [{"name": "a", "memory_limit_bytes": 1e9}]})"),
      HasSubstr("pools[0].memory_limit_bytes: only process pools take it"));
  EXPECT_THAT(ParseError(R"({"pools": [{"name": "a", "kind": "thread",
                                        "cancel_grace": "1s"}]})"),
              HasSubstr("pools[0].cancel_grace: only process pools"));
  EXPECT_THAT(ParseError(R"({"pools": [{"name": "a", "kind": "process",
                                        "memory_limit_bytes": 1000}]})"),
              HasSubstr("must be at least"));
  EXPECT_THAT(ParseError(R"({"pools": [{"name": "a", "kind": "process",
                                        "cancel_grace": "soon"}]})"),
              HasSubstr("bad duration"));
  EXPECT_THAT(ParseError(R"({"pools": [{"name": "a", "kind": "process",
                                        "max_tasks_per_worker": 0}]})"),
              HasSubstr("max_tasks_per_worker"));
}

TEST(ConfigTest, DurationsMayBeNumbersOfSeconds) {
  absl::StatusOr<ServerConfig> config = ParseConfig(
      R"({"retention": {"ttl": 30}, "shutdown_grace": 2.5})", DefaultConfig());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->executor.default_ttl, absl::Seconds(30));
  EXPECT_EQ(config->shutdown_grace, absl::Milliseconds(2500));
}

TEST(MemoryBudgetConfigTest, SizesTakeBinaryUnits) {
  EXPECT_EQ(ParseByteSize("1048576").value(), 1048576u);
  EXPECT_EQ(ParseByteSize("512MiB").value(), size_t{512} << 20);
  EXPECT_EQ(ParseByteSize("512Mi").value(), size_t{512} << 20);
  EXPECT_EQ(ParseByteSize("1.5GiB").value(), size_t{3} << 29);
  EXPECT_EQ(ParseByteSize(" 2 GiB ").value(), size_t{2} << 30);
  for (const char* bad :
       {"", "0", "GiB", "12XB", "-1GiB", "1e3", "99999999TiB"}) {
    EXPECT_THAT(ParseByteSize(bad).status().message(), HasSubstr("bad size"))
        << bad;
  }
}

TEST(MemoryBudgetConfigTest, ConfigKeyAndDefault) {
  absl::StatusOr<ServerConfig> config =
      ParseConfig(R"({"memory_budget": "256MiB"})", DefaultConfig());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->executor.memory_budget, size_t{256} << 20);
  EXPECT_THAT(ParseError(R"({"memory_budget": "lots"})"),
              HasSubstr("memory_budget: bad size 'lots'"));
  EXPECT_EQ(DefaultConfig().executor.memory_budget,
            DefaultMemoryBudget(AvailableMemoryBytes()));
  EXPECT_EQ(DefaultMemoryBudget(size_t{8} << 30), size_t{4} << 30);
  EXPECT_EQ(DefaultMemoryBudget(size_t{100} << 20), size_t{64} << 20);
  EXPECT_EQ(DefaultMemoryBudget(0), size_t{1} << 30);
}

// A fake root with /proc/meminfo and a cgroup file.
class FakeRoot {
 public:
  FakeRoot() {
    char dir[] = "/tmp/remex_root_XXXXXX";
    path_ = mkdtemp(dir);
    std::filesystem::create_directories(path_ + "/proc");
    Write("proc/meminfo", "MemTotal:       16384000 kB\nMemFree: 1 kB\n");
  }
  ~FakeRoot() { std::filesystem::remove_all(path_); }
  void Write(const std::string& name, const std::string& text) {
    const std::filesystem::path file = std::filesystem::path(path_) / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(MemoryBudgetConfigTest, AvailableMemoryIsTheCgroupLimitOrTheMachines) {
  constexpr size_t kMachine = size_t{16384000} * 1024;
  {
    FakeRoot root;
    EXPECT_EQ(AvailableMemoryBytes(root.path()), kMachine);
    root.Write("sys/fs/cgroup/memory.max", "max\n");
    EXPECT_EQ(AvailableMemoryBytes(root.path()), kMachine);
    root.Write("sys/fs/cgroup/memory.max", "536870912\n");
    EXPECT_EQ(AvailableMemoryBytes(root.path()), size_t{512} << 20);
  }
  {
    FakeRoot root;  // cgroup v1: "no limit" is a huge number
    root.Write("sys/fs/cgroup/memory/memory.limit_in_bytes",
               "9223372036854771712\n");
    EXPECT_EQ(AvailableMemoryBytes(root.path()), kMachine);
    root.Write("sys/fs/cgroup/memory/memory.limit_in_bytes", "1073741824\n");
    EXPECT_EQ(AvailableMemoryBytes(root.path()), size_t{1} << 30);
  }
  EXPECT_EQ(AvailableMemoryBytes("/nonexistent"), 0u);
}

TEST(ConfigTest, EmptyTextKeepsTheBase) {
  ServerConfig base = DefaultConfig();
  base.enable_test_functions = true;
  base.listen = "127.0.0.1:0";
  absl::StatusOr<ServerConfig> config = ParseConfig("", base);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->enable_test_functions);
  EXPECT_EQ(config->listen, "127.0.0.1:0");
  EXPECT_EQ(config->executor.pools.size(), base.executor.pools.size());
}

TEST(ConfigTest, UnknownKeysAreRejectedByName) {
  EXPECT_THAT(ParseError(R"({"poolz": []})"), HasSubstr("poolz"));
  EXPECT_THAT(ParseError(R"({"pools": [{"name": "a", "threads": 4}]})"),
              HasSubstr("threads"));
  EXPECT_THAT(ParseError(R"({"retention": {"tll": "1m"}})"), HasSubstr("tll"));
}

TEST(ConfigTest, BadDurationsAreRejected) {
  std::string error = ParseError(R"({"shutdown_grace": "10 parsecs"})");
  EXPECT_THAT(error, HasSubstr("shutdown_grace"));
  EXPECT_THAT(error, HasSubstr("10 parsecs"));
  EXPECT_THAT(ParseError(R"({"shutdown_grace": "-1s"})"),
              HasSubstr("shutdown_grace"));
  EXPECT_THAT(ParseError(R"({"retention": {"ttl": "soon"}})"),
              HasSubstr("retention.ttl"));
  EXPECT_THAT(ParseError(R"({"retention": {"ttl": -5}})"),
              HasSubstr("retention.ttl"));
}

TEST(ConfigTest, BadPoolsAreRejected) {
  EXPECT_THAT(ParseError(R"({"pools": [{"name": "a", "workers": 0}]})"),
              HasSubstr("workers"));
  EXPECT_THAT(ParseError(R"({"pools": [{"name": "a", "workers": -2}]})"),
              HasSubstr("workers"));
  EXPECT_THAT(ParseError(R"({"pools": [{"name": "a", "workers": "four"}]})"),
              HasSubstr("workers"));
  EXPECT_THAT(ParseError(R"({"pools": [{"name": "a", "max_queue": 0}]})"),
              HasSubstr("max_queue"));
  std::string error =
      ParseError(R"({"pools": [{"name": "a", "kind": "fiber"}]})");
  EXPECT_THAT(error, HasSubstr("kind"));
  EXPECT_THAT(error, HasSubstr("fiber"));
  EXPECT_THAT(ParseError(R"({"pools": [{"workers": 2}]})"), HasSubstr("name"));
  EXPECT_THAT(ParseError(R"({"pools": []})"), HasSubstr("pools"));
  EXPECT_THAT(ParseError(R"({"pools": {"name": "a"}})"), HasSubstr("pools"));
  EXPECT_THAT(ParseError(R"({"pollers": 0})"), HasSubstr("pollers"));
}

TEST(ConfigTest, MalformedTextIsInvalidArgument) {
  ParseError(R"({"pools": [)");
  ParseError("- just\n- a list\n");
}

TEST(ConfigTest, ParsePoolKindAcceptsThreadAndProcess) {
  EXPECT_EQ(*executor::ParsePoolKind("thread"), PoolKind::kThread);
  EXPECT_EQ(*executor::ParsePoolKind("process"), PoolKind::kProcess);
  EXPECT_EQ(executor::ParsePoolKind("Thread").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(executor::PoolKindName(PoolKind::kProcess), "process");
}

TEST(ConfigTest, LoadConfigFileReadsAFile) {
  const std::string path = ::testing::TempDir() + "/remex_config_test.yaml";
  {
    std::ofstream file(path);
    file << kDesignExampleYaml;
  }
  absl::StatusOr<ServerConfig> config = LoadConfigFile(path, DefaultConfig());
  std::remove(path.c_str());
  ASSERT_TRUE(config.ok()) << config.status();
  ExpectDesignExamplePools(*config);

  EXPECT_EQ(LoadConfigFile(path, DefaultConfig()).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace remex::server

namespace remex::server {
namespace {

TEST(ConfigTest, PluginPathsAreRelativeToTheConfigDirectory) {
  absl::StatusOr<ServerConfig> config =
      ParseConfig(R"({"plugins": ["liba.so", "/opt/libb.so", "sub/libc.so"]})",
                  DefaultConfig(), "/etc/remex");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->plugins,
            (std::vector<std::string>{"/etc/remex/liba.so", "/opt/libb.so",
                                      "/etc/remex/sub/libc.so"}));
}

TEST(ConfigTest, ParsesCommandFunctions) {
  absl::StatusOr<ServerConfig> config = ParseConfig(R"(
functions:
  - name: upper
    description: capitals
    command: [/usr/bin/tr, "{from}", "{to}"]
    pool: default
    run_timeout: 30s
    cancel_grace: 500ms
    env: {LC_ALL: C}
    working_dir: /tmp
    max_output_bytes: 4096
)",
                                                    DefaultConfig());
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->command_functions.size(), 1u);
  const functions::CommandFunctionConfig& upper = config->command_functions[0];
  EXPECT_EQ(upper.name, "upper");
  EXPECT_EQ(upper.description, "capitals");
  EXPECT_EQ(upper.command,
            (std::vector<std::string>{"/usr/bin/tr", "{from}", "{to}"}));
  EXPECT_EQ(upper.pool, "default");
  EXPECT_EQ(upper.run_timeout, absl::Seconds(30));
  EXPECT_EQ(upper.cancel_grace, absl::Milliseconds(500));
  EXPECT_EQ(upper.env, (std::map<std::string, std::string>{{"LC_ALL", "C"}}));
  EXPECT_EQ(upper.working_dir, "/tmp");
  EXPECT_EQ(upper.max_output_bytes, 4096);
}

TEST(ConfigTest, ParsesTheSafetyKeysOfCommandFunctions) {
  absl::StatusOr<ServerConfig> config = ParseConfig(R"(
functions:
  - name: show
    command: [/usr/bin/printf, "{value}"]
    allow_option_values: true
)",
                                                    DefaultConfig());
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->command_functions.size(), 1u);
  EXPECT_TRUE(config->command_functions[0].allow_option_values);
  EXPECT_EQ(config->command_functions[0].user, "");
  if (geteuid() != 0) GTEST_SKIP() << "user and group need root";
  config = ParseConfig(R"(
functions:
  - {name: a, command: [/bin/true], user: nobody}
  - {name: b, command: [/bin/true], user: 65534, group: 1}
)",
                       DefaultConfig());
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->command_functions.size(), 2u);
  EXPECT_EQ(config->command_functions[0].user, "nobody");
  EXPECT_EQ(config->command_functions[0].group, "");
  EXPECT_EQ(config->command_functions[1].user, "65534");
  EXPECT_EQ(config->command_functions[1].group, "1");
  EXPECT_THAT(ParseError(R"({"functions": [{"name": "x",
                   "command": ["/bin/true"], "user": "12345678"}]})"),
              HasSubstr("user 12345678 has no passwd entry"));
}

TEST(ConfigTest, BadCommandFunctionsAreRejectedByIndex) {
  EXPECT_THAT(ParseError(R"({"functions": [{"command": ["/bin/echo"]}]})"),
              HasSubstr("functions[0]: needs a name"));
  EXPECT_THAT(ParseError(R"({"functions": [{"name": "x"}]})"),
              HasSubstr("functions[0]: needs a command"));
  EXPECT_THAT(
      ParseError(R"({"functions": [{"name": "x", "command": "/bin/echo"}]})"),
      HasSubstr("functions[0].command: must be a list"));
  EXPECT_THAT(ParseError(R"({"functions": [{"name": "x",
                   "command": ["/bin/echo", "{a}}"]}]})"),
              HasSubstr("a lone '}'"));
  EXPECT_THAT(ParseError(R"({"functions": [{"name": "x",
                   "command": ["/bin/echo"], "max_output_bytes": 0}]})"),
              HasSubstr("functions[0].max_output_bytes"));
  EXPECT_THAT(ParseError(R"({"functions": [{"name": "x",
                   "command": ["/bin/echo"], "env": {"A=B": "c"}}]})"),
              HasSubstr("env: bad variable 'A=B'"));
  EXPECT_THAT(ParseError(R"({"plugins": "liba.so"})"),
              HasSubstr("plugins: must be a list"));
}

TEST(ConfigTest, TlsPathsAreRelativeToTheConfigDirectory) {
  absl::StatusOr<ServerConfig> config = ParseConfig(
      "tls_cert: server.pem\ntls_key: /keys/server.key\n"
      "tls_client_ca: ca/clients.pem\n",
      DefaultConfig(), "/etc/remex");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->tls_cert, "/etc/remex/server.pem");
  EXPECT_EQ(config->tls_key, "/keys/server.key");
  EXPECT_EQ(config->tls_client_ca, "/etc/remex/ca/clients.pem");
  EXPECT_TRUE(CheckTlsConfig(*config).ok());
  EXPECT_THAT(ParseConfig("tls_cert: ''\n", DefaultConfig()).status().message(),
              HasSubstr("tls_cert: empty path"));
}

TEST(ConfigTest, TlsSettingsMustGoTogether) {
  ServerConfig config = DefaultConfig();
  EXPECT_TRUE(CheckTlsConfig(config).ok());  // plaintext
  config.tls_cert = "server.pem";
  EXPECT_THAT(CheckTlsConfig(config).message(),
              HasSubstr("TLS needs both a certificate and its key"));
  config.tls_key = "server.key";
  EXPECT_TRUE(CheckTlsConfig(config).ok());
  config.tls_client_ca = "ca.pem";
  EXPECT_TRUE(CheckTlsConfig(config).ok());
  config.tls_cert.clear();
  config.tls_key.clear();
  EXPECT_THAT(CheckTlsConfig(config).message(),
              HasSubstr("--tls-client-ca (config tls_client_ca) needs TLS"));
}

std::string HostName() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

// `config` after ResolveStoreConfig, which must succeed.
ServerConfig Resolved(ServerConfig config, const StoreFlags& flags,
                      const char* env_store) {
  const absl::Status status = ResolveStoreConfig(flags, env_store, config);
  EXPECT_TRUE(status.ok()) << status;
  return config;
}

// The message of ResolveStoreConfig's INVALID_ARGUMENT.
std::string StoreError(ServerConfig config, const StoreFlags& flags,
                       const char* env_store = nullptr) {
  const absl::Status status = ResolveStoreConfig(flags, env_store, config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  return std::string(status.message());
}

TEST(StoreConfigTest, DefaultsToMemoryAndTheHostName) {
  EXPECT_EQ(DefaultConfig().store, "memory");
  const ServerConfig config = Resolved(DefaultConfig(), {}, nullptr);
  EXPECT_EQ(config.store, "memory");
  ASSERT_FALSE(HostName().empty());
  EXPECT_EQ(config.replica_name, HostName());
}

TEST(StoreConfigTest, FlagOverEnvironmentOverConfigOverDefault) {
  absl::StatusOr<ServerConfig> file = ParseConfig(R"(
store: postgresql://file@db.example/remex
replica_name: from-file
)",
                                                  DefaultConfig());
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->store, "postgresql://file@db.example/remex");
  EXPECT_EQ(file->replica_name, "from-file");
  const StoreFlags flags{.store = "postgres://flag@db.example:5433/remex",
                         .replica_name = "from-flag"};
  const char* env = "host=env.example dbname=remex user=env";

  ServerConfig config = Resolved(*file, flags, env);
  EXPECT_EQ(config.store, "postgres://flag@db.example:5433/remex");
  EXPECT_EQ(config.replica_name, "from-flag");

  config = Resolved(*file, {}, env);
  EXPECT_EQ(config.store, "host=env.example dbname=remex user=env");
  EXPECT_EQ(config.replica_name, "from-file");

  // An empty variable is no variable.
  config = Resolved(*file, {}, "");
  EXPECT_EQ(config.store, "postgresql://file@db.example/remex");
  config = Resolved(*file, {}, nullptr);
  EXPECT_EQ(config.store, "postgresql://file@db.example/remex");

  // The environment over the default; the flag says memory over the rest.
  config = Resolved(DefaultConfig(), {}, env);
  EXPECT_EQ(config.store, "host=env.example dbname=remex user=env");
  EXPECT_EQ(config.replica_name, HostName());
  config = Resolved(*file, {.store = "memory"}, env);
  EXPECT_EQ(config.store, "memory");
}

TEST(StoreConfigTest, RefusesWhatLibpqCannotParseNamingTheFlag) {
  const std::string misspelt = StoreError(DefaultConfig(), {.store = "memroy"});
  EXPECT_THAT(misspelt, HasSubstr("--store: "));
  EXPECT_THAT(misspelt, HasSubstr("neither memory nor a PostgreSQL"));
  // libpq's own reason.
  EXPECT_THAT(misspelt, HasSubstr("\"memroy\""));
  EXPECT_THAT(misspelt, Not(HasSubstr("\n")));

  EXPECT_THAT(StoreError(DefaultConfig(), {.store = "mysql://db/remex"}),
              HasSubstr("--store: "));
  EXPECT_THAT(
      StoreError(DefaultConfig(), {.store = "host=db no_such_option=1"}),
      HasSubstr("no_such_option"));
  EXPECT_THAT(StoreError(DefaultConfig(), {.store = ""}),
              HasSubstr("--store: empty"));
  EXPECT_THAT(StoreError(DefaultConfig(), {}, "redis://cache"),
              HasSubstr("--store (from $REMEX_STORE): "));
  ServerConfig file = DefaultConfig();
  file.store = "sqlite:tasks.db";
  EXPECT_THAT(StoreError(file, {}), HasSubstr("config store: "));
  EXPECT_THAT(StoreError(DefaultConfig(), {.replica_name = ""}),
              HasSubstr("--replica-name"));
}

TEST(StoreConfigTest, ConfigFileRefusesEmptyStoreAndReplicaName) {
  EXPECT_THAT(ParseError("store: ''"), HasSubstr("store"));
  EXPECT_THAT(ParseError("replica_name: ''"), HasSubstr("replica_name"));
  EXPECT_THAT(ParseError("store: [memory]"), HasSubstr("store"));
}

TEST(ConfigTest, LogFormatAndLevelKeys) {
  const ServerConfig defaults = DefaultConfig();
  EXPECT_EQ(defaults.log_format, log::Format::kText);
  EXPECT_EQ(defaults.log_level, log::Level::kInfo);
  absl::StatusOr<ServerConfig> config =
      ParseConfig("log_format: json\nlog_level: warn\n", DefaultConfig());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->log_format, log::Format::kJson);
  EXPECT_EQ(config->log_level, log::Level::kWarn);
  EXPECT_THAT(
      ParseError("log_format: xml"),
      HasSubstr("config: log_format: expected text or json, got 'xml'"));
  EXPECT_THAT(ParseError("log_level: loud"),
              HasSubstr("config: log_level: expected debug, info, warn or "
                        "error, got 'loud'"));
  EXPECT_THAT(ParseError("log_level: [info]"), HasSubstr("log_level"));
}

TEST(ConfigTest, HelpDocumentsTheLogFlags) {
  const testing::ProcessResult help =
      testing::RunServerExpectingExit({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* text :
       {"--log-format text|json", "--log-level debug|info|warn|error",
        "log_format: text|json", "log_level: debug|info|warn|error"}) {
    EXPECT_THAT(help.out, HasSubstr(text));
  }
}

TEST(StoreConfigTest, HelpDocumentsTheStoreFlags) {
  const testing::ProcessResult help =
      testing::RunServerExpectingExit({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* text : {"--store URL", "$REMEX_STORE", "store: memory|URL",
                           "--replica-name NAME", "replica_name: NAME",
                           "--memory-budget SIZE", "memory_budget: \"2GiB\""}) {
    EXPECT_THAT(help.out, HasSubstr(text));
  }
}

// The server binary: a bad store is one line on stderr and exit 1.
TEST(StoreConfigTest, ServerExitsOneWithOneLineOnABadStore) {
  const testing::ProcessResult flag =
      testing::RunServerExpectingExit({"--store", "memroy"});
  EXPECT_EQ(flag.exit_code, 1) << flag.err;
  EXPECT_EQ(flag.out, "");
  EXPECT_THAT(flag.err, HasSubstr("remex-server: --store: neither memory"));
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(flag.err, '\n')).size(), 2u)
      << flag.err;

  const absl::StatusOr<testing::ProcessResult> env =
      testing::RunProcess({REMEX_SERVER_PATH, "--listen", "127.0.0.1:0",
                           "--metrics-listen", "none"},
                          absl::Seconds(30), {"REMEX_STORE=bogus"});
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->exit_code, 1) << env->err;
  EXPECT_THAT(env->err, HasSubstr("--store (from $REMEX_STORE)"));
}

}  // namespace
}  // namespace remex::server
