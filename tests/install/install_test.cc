// The installed SDK works for a project of its own: `cmake --install` into a
// temp prefix gives headers, libraries and a CMake package; examples/,
// configured alone against that prefix (find_package(remex CONFIG)), builds
// the SDK quickstart and the example plugin; the quickstart runs against the
// installed remex-server, which loads the plugin.
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/remex.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using remex::testing::ProcessResult;
using remex::testing::RunProcess;
using remex::testing::ServerProcess;
using remex::testing::TempDir;

// Runs one step of the install and build; an error names the command and
// carries its output.
absl::Status Step(const std::vector<std::string>& argv, absl::Duration timeout,
                  const std::vector<std::string>& extra_env = {}) {
  absl::StatusOr<ProcessResult> run = RunProcess(argv, timeout, extra_env);
  const std::string command = absl::StrJoin(argv, " ");
  if (!run.ok()) {
    return absl::Status(run.status().code(),
                        absl::StrCat(command, ": ", run.status().message()));
  }
  if (run->exit_code != 0) {
    return absl::InternalError(absl::StrCat(
        command, ": exit code ", run->exit_code, "\n", run->out, run->err));
  }
  return absl::OkStatus();
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class InstallTest : public ::testing::Test {
 protected:
  // Installs and builds once for every test of the suite.
  static void SetUpTestSuite() {
    temp_dir_ = new TempDir();
    setup_ = new absl::Status(InstallAndBuild());
  }
  static void TearDownTestSuite() {
    delete setup_;
    setup_ = nullptr;
    delete temp_dir_;
    temp_dir_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(setup_->ok()) << *setup_; }

  static fs::path prefix() { return temp_dir_->path() / "prefix"; }
  static fs::path examples_build() { return temp_dir_->path() / "examples"; }
  static std::string installed_server() {
    return (prefix() / "bin" / "remex-server").string();
  }

 private:
  static absl::Status InstallAndBuild() {
    absl::Status status = Step({REMEX_CMAKE, "--install", REMEX_BUILD_DIR,
                                "--prefix", prefix().string()},
                               absl::Minutes(2));
    if (!status.ok()) return status;
    std::vector<std::string> configure = {
        REMEX_CMAKE,
        "-S",
        absl::StrCat(REMEX_SOURCE_DIR, "/examples"),
        "-B",
        examples_build().string(),
        absl::StrCat("-DCMAKE_PREFIX_PATH=", prefix().string()),
        absl::StrCat("-DCMAKE_CXX_COMPILER=", REMEX_CXX_COMPILER),
        "-DCMAKE_BUILD_TYPE=RelWithDebInfo"};
    if (!std::string(REMEX_CCACHE).empty()) {
      configure.push_back(
          absl::StrCat("-DCMAKE_CXX_COMPILER_LAUNCHER=", REMEX_CCACHE));
    }
    status = Step(configure, absl::Minutes(2));
    if (!status.ok()) return status;
    // Paths under the temp dir are rewritten relative to it, so that ccache
    // finds the objects of earlier runs.
    return Step({REMEX_CMAKE, "--build", examples_build().string(), "-j2",
                 "--target", "sdk_quickstart", "remex_example_plugin"},
                absl::Minutes(8),
                {absl::StrCat("CCACHE_BASEDIR=", temp_dir_->path().string()),
                 "CCACHE_NOHASHDIR=1"});
  }

  static inline TempDir* temp_dir_ = nullptr;
  static inline absl::Status* setup_ = nullptr;
};

TEST_F(InstallTest, InstallsHeadersLibrariesAndAPackage) {
  const fs::path lib = prefix() / REMEX_INSTALL_LIBDIR;
  for (const fs::path& file :
       {prefix() / "bin/remex-server", prefix() / "bin/remex",
        prefix() / "include/remex/remex.h", prefix() / "include/remex/plugin.h",
        prefix() / "include/remex/v1/executor.pb.h",
        prefix() / "share/remex/proto/remex/v1/executor.proto",
        lib / "libremex_sdk.a", lib / "cmake/remex/remexConfig.cmake",
        lib / "cmake/remex/remexConfigVersion.cmake"}) {
    EXPECT_TRUE(fs::exists(file)) << file;
  }
  // The SDK's internal headers are not part of it.
  EXPECT_FALSE(fs::exists(prefix() / "include" / "client"));
  // Nothing in the package points back into the tree it was built from.
  const std::string targets = ReadFile(lib / "cmake/remex/remexTargets.cmake");
  ASSERT_NE(targets.find("remex::sdk"), std::string::npos);
  ASSERT_NE(targets.find("remex::plugin"), std::string::npos);
  EXPECT_EQ(targets.find(REMEX_SOURCE_DIR), std::string::npos);
  EXPECT_EQ(targets.find(REMEX_BUILD_DIR), std::string::npos);
}

TEST_F(InstallTest, QuickstartBuiltOutOfTreeRunsAgainstInstalledServer) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::StartBinary(installed_server());
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<ProcessResult> run = RunProcess(
      {(examples_build() / "sdk_quickstart").string(), (*server)->address()},
      absl::Seconds(60));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->exit_code, 0) << run->out << run->err;
  // pi(100000), counted by the server's primes.
  EXPECT_NE(run->out.find("9592"), std::string::npos) << run->out;
}

TEST_F(InstallTest, PluginBuiltOutOfTreeLoadsIntoInstalledServer) {
  const fs::path plugin =
      examples_build() / "plugin" / "libremex_example_plugin.so";
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::StartBinary(installed_server(),
                                 {"--plugin", plugin.string()});
  ASSERT_TRUE(server.ok()) << server.status();
  remex::Client client((*server)->address());

  const remex::TaskResult reversed =
      client.Submit("reverse", remex::Json(R"({"text": "stressed"})")).get();
  EXPECT_EQ(reversed.json(), "\"desserts\"");
}

}  // namespace
