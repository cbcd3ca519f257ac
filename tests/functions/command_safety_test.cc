// What a command function cannot reach, end to end against the real
// remex-server: the server's environment (neither through its own
// environment nor through /proc/<pid>/environ of the server, its janitor or
// its workers), and, with `user`, what its account may not read. Most of
// these need root (CI runs as root) to start a server or a command as
// another account; they are skipped otherwise.
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/remex.h"
#include "tests/testing/proc.h"
#include "tests/testing/sdk_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using ::remex::testing::AwaitTask;
using ::remex::testing::ChildrenOf;
using ::remex::testing::ProcessesWithArgument;
using ::remex::testing::ServerProcess;
using ::remex::testing::TempDir;
using ::remex::testing::WaitUntil;

constexpr char kSecretName[] = "REMEX_TEST_SECRET";
constexpr char kSecretValue[] = "the-server-secret-3141";
constexpr char kSetpriv[] = "/usr/bin/setpriv";

// The commands of these tests; `{file}` is read by cat.
constexpr char kFunctions[] = R"(
pools:
  - {name: default, kind: thread, workers: 2}
  - {name: procs, kind: process, workers: 1}
shutdown_grace: 200ms
functions:
  - name: env_dump
    command: [/usr/bin/env]
  - name: read_file
    command: [/bin/cat, "{file}"]
  - name: uid
    command: [/usr/bin/id, -u]
)";

// Functions run as another account (the server must be root).
constexpr char kNobodyFunctions[] = R"(
  - name: nobody_uid
    command: [/usr/bin/id, -u]
    user: nobody
  - name: nobody_groups
    command: [/usr/bin/id, -G]
    user: nobody
  - name: numeric_ids
    command: [/usr/bin/id]
    user: "65534"
    group: "1"
  - name: nobody_reads
    command: [/bin/cat, "{file}"]
    user: nobody
  - name: nobody_where
    command: [/bin/sh, -c, "/bin/pwd; /usr/bin/stat -c '%a %u' ."]
    user: nobody
  - name: nobody_stays
    command: [/bin/sh, -c, "cat >/dev/null; exec /bin/sleep 30"]
    user: nobody
    cancel_grace: 500ms
)";

struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
};

Account Nobody() {
  const passwd* entry = getpwnam("nobody");
  if (entry == nullptr) return {65534, 65534};
  return {entry->pw_uid, entry->pw_gid};
}

std::string ReadAll(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// {"file": PATH}; the paths of these tests need no escaping.
std::string FileArgs(const std::string& path) {
  return absl::StrCat(R"({"file": ")", path, R"("})");
}

std::set<std::string> Lines(absl::string_view text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// Starts the real server through a script that gives it kSecretName in its
// environment and, if `as` is set, runs it as that account (setpriv, with
// the parent-death signal the harness would give it).
class CommandSafetyTest : public ::testing::Test {
 protected:
  void StartServer(const std::string& config,
                   std::optional<Account> as = std::nullopt) {
    // The commands' private directories: in this test's directory (what a
    // killed server leaves goes with it), or in /tmp for a server as
    // another account, which must be able to write there.
    const std::string tmpdir = as.has_value() ? "/tmp" : dir_.path().string();
    std::string run = absl::StrCat("exec /usr/bin/env TMPDIR=", tmpdir, " ",
                                   kSecretName, "=", kSecretValue, " ");
    if (as.has_value()) {
      absl::StrAppend(&run, kSetpriv, " --reuid=", as->uid,
                      " --regid=", as->gid,
                      " --clear-groups --pdeathsig KILL -- ");
    }
    absl::StrAppend(&run, REMEX_SERVER_PATH, " \"$@\"\n");
    const std::string script =
        dir_.Write("start-server.sh", absl::StrCat("#!/bin/sh\n", run));
    ASSERT_EQ(chmod(script.c_str(), 0755), 0);
    absl::StatusOr<std::unique_ptr<ServerProcess>> server =
        ServerProcess::StartBinary(
            script, {"--config", dir_.Write("remex.yaml", config)});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = std::make_unique<Client>(server_->address());
  }

  v1::Task Run(const std::string& function, std::string_view args,
               SubmitOptions options = {}) {
    return testing::RunTask(*client_, function, args, options);
  }

  // Expects `function` to fail reading `file`: permission denied.
  void ExpectCannotRead(const std::string& function, const std::string& file,
                        SubmitOptions options = {}) {
    const v1::Task task = Run(function, FileArgs(file), options);
    EXPECT_EQ(task.state(), v1::FAILED)
        << function << " read " << file << ": " << task.output();
    EXPECT_TRUE(absl::StrContains(task.error().message(), "Permission denied"))
        << task.error().message();
    EXPECT_FALSE(absl::StrContains(task.output(), kSecretValue));
  }

  // The server's child `/bin/sleep 30` (nobody_stays), once it runs as
  // nobody in a process group of its own; 0 if none comes. nobody_stays
  // execs the sleep only when its stdin closes, which the server does after
  // telling the janitor of it: once found, a kill -9 of the server must
  // take it along.
  pid_t AwaitSleepingChild() {
    // setpriv execs the command in place: the server's child is the command.
    const std::string sleep_cmdline =
        std::string("/bin/sleep") + '\0' + "30" + '\0';
    pid_t child = 0;
    EXPECT_TRUE(WaitUntil(
        [&] {
          for (const auto& entry : ChildrenOf(server_->pid())) {
            if (entry.pgrp == entry.pid &&
                ReadAll(absl::StrCat("/proc/", entry.pid, "/cmdline")) ==
                    sleep_cmdline) {
              child = entry.pid;
            }
          }
          return child > 0;
        },
        absl::Seconds(20)))
        << "no child /bin/sleep 30 of the server";
    struct stat info;
    if (child > 0 && stat(absl::StrCat("/proc/", child).c_str(), &info) == 0) {
      EXPECT_EQ(info.st_uid, Nobody().uid);
    }
    return child;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(CommandSafetyTest, TheServersEnvironmentNeverReachesACommand) {
  StartServer(kFunctions);
  if (geteuid() == 0) {
    // The secret is there to leak: root reads any /proc/<pid>/environ.
    EXPECT_TRUE(absl::StrContains(
        ReadAll(absl::StrCat("/proc/", server_->pid(), "/environ")),
        kSecretValue));
  }
  for (const char* pool : {"default", "procs"}) {
    const v1::Task task = Run("env_dump", "{}", {.pool = pool});
    ASSERT_EQ(task.state(), v1::SUCCEEDED) << task.error().message();
    EXPECT_EQ(Lines(task.output()),
              std::set<std::string>{"PATH=/usr/local/bin:/usr/bin:/bin"})
        << "on pool " << pool << ": " << task.output();
  }
}

TEST_F(CommandSafetyTest, ACommandAsTheServersUidCannotReadItsProcFiles) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to start a server as nobody";
  const Account nobody = Nobody();
  StartServer(kFunctions, nobody);
  // The command runs as the server's uid...
  const v1::Task uid = Run("uid", "{}");
  ASSERT_EQ(uid.state(), v1::SUCCEEDED) << uid.error().message();
  EXPECT_EQ(uid.output(), absl::StrCat(nobody.uid, "\n"));
  // ...yet cannot read what /proc shows of the server, its janitor (which
  // holds the server's whole environment) or its pool's worker: they are
  // not dumpable.
  ExpectCannotRead("read_file",
                   absl::StrCat("/proc/", server_->pid(), "/environ"));
  ExpectCannotRead("read_file", absl::StrCat("/proc/", server_->pid(), "/mem"));
  const std::vector<pid_t> janitor = ProcessesWithArgument(
      absl::StrCat("--remex-janitor=", server_->pid(), ":detached"));
  ASSERT_EQ(janitor.size(), 1u);
  // (The server waits for the janitor to close its files before it serves:
  // a janitor still loading was readable, under load, 4 times in ~120.)
  ExpectCannotRead("read_file", absl::StrCat("/proc/", janitor[0], "/environ"));
  // The process pool still works, and its commands are held back the same.
  ExpectCannotRead("read_file",
                   absl::StrCat("/proc/", server_->pid(), "/environ"),
                   {.pool = "procs"});
  std::vector<pid_t> workers;
  for (const auto& child : ChildrenOf(server_->pid())) {
    workers.push_back(child.pid);
  }
  ASSERT_EQ(workers.size(), 1u) << "the pool's one worker";
  ExpectCannotRead("read_file", absl::StrCat("/proc/", workers[0], "/environ"));
  // Nor do they hold the server's secrets: root, who may read any environ,
  // finds none there.
  for (pid_t child : {janitor[0], workers[0]}) {
    EXPECT_FALSE(absl::StrContains(
        ReadAll(absl::StrCat("/proc/", child, "/environ")), kSecretValue))
        << "pid " << child;
  }
}

TEST_F(CommandSafetyTest, UserRunsTheCommandAsThatAccount) {
  if (geteuid() != 0) GTEST_SKIP() << "user needs a root server";
  const Account nobody = Nobody();
  StartServer(absl::StrCat(kFunctions, kNobodyFunctions));
  const v1::Task uid = Run("nobody_uid", "{}");
  ASSERT_EQ(uid.state(), v1::SUCCEEDED) << uid.error().message();
  EXPECT_EQ(uid.output(), absl::StrCat(nobody.uid, "\n"));
  // Its primary group, and no other (not root's).
  const v1::Task groups = Run("nobody_groups", "{}");
  ASSERT_EQ(groups.state(), v1::SUCCEEDED) << groups.error().message();
  EXPECT_EQ(groups.output(), absl::StrCat(nobody.gid, "\n"));
  const v1::Task numeric = Run("numeric_ids", "{}");
  ASSERT_EQ(numeric.state(), v1::SUCCEEDED) << numeric.error().message();
  EXPECT_TRUE(absl::StartsWith(numeric.output(), "uid=65534("))
      << numeric.output();
  EXPECT_TRUE(absl::StrContains(numeric.output(), " gid=1("))
      << numeric.output();
  EXPECT_TRUE(absl::StrContains(numeric.output(), " groups=1("))
      << numeric.output();
  EXPECT_FALSE(absl::StrContains(numeric.output(), ",")) << numeric.output();
}

TEST_F(CommandSafetyTest, UserCannotReadWhatOnlyRootMayRead) {
  if (geteuid() != 0) GTEST_SKIP() << "user needs a root server";
  StartServer(absl::StrCat(kFunctions, kNobodyFunctions));
  const std::string secret = dir_.Write("root-only.txt", "for root's eyes\n");
  ASSERT_EQ(chmod(secret.c_str(), 0600), 0);
  const std::string args = FileArgs(secret);
  // As root, the file is read (the control)...
  const v1::Task as_root = Run("read_file", args);
  ASSERT_EQ(as_root.state(), v1::SUCCEEDED) << as_root.error().message();
  EXPECT_EQ(as_root.output(), "for root's eyes\n");
  // ...as nobody, neither the file nor the server's environment.
  ExpectCannotRead("nobody_reads", secret);
  ExpectCannotRead("nobody_reads",
                   absl::StrCat("/proc/", server_->pid(), "/environ"));
  ExpectCannotRead("nobody_reads", "/etc/shadow");
}

TEST_F(CommandSafetyTest, UsersPrivateDirectoryIsItsOwnAndGoesAway) {
  if (geteuid() != 0) GTEST_SKIP() << "user needs a root server";
  StartServer(absl::StrCat(kFunctions, kNobodyFunctions));
  const v1::Task task = Run("nobody_where", "{}");
  ASSERT_EQ(task.state(), v1::SUCCEEDED) << task.error().message();
  const std::vector<std::string> lines =
      absl::StrSplit(task.output(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << task.output();
  EXPECT_EQ(lines[1], absl::StrCat("700 ", Nobody().uid));
  EXPECT_FALSE(std::filesystem::exists(lines[0])) << lines[0];
}

TEST_F(CommandSafetyTest, ACommandRunAsAnotherUserIsStillKilledOnCancel) {
  if (geteuid() != 0) GTEST_SKIP() << "user needs a root server";
  StartServer(absl::StrCat(kFunctions, kNobodyFunctions));
  Future future = client_->Submit("nobody_stays", Json("{}"));
  const pid_t child = AwaitSleepingChild();
  ASSERT_GT(child, 0);
  EXPECT_TRUE(future.cancel());
  EXPECT_EQ(AwaitTask(*client_, future.id()).state(), v1::CANCELLED);
  EXPECT_TRUE(
      WaitUntil([&] { return !testing::IsAlive(child); }, absl::Seconds(10)));
}

TEST_F(CommandSafetyTest, ACommandRunAsAnotherUserDiesWithAKilledServer) {
  if (geteuid() != 0) GTEST_SKIP() << "user needs a root server";
  StartServer(absl::StrCat(kFunctions, kNobodyFunctions));
  client_->Submit("nobody_stays", Json("{}"));
  const pid_t child = AwaitSleepingChild();
  ASSERT_GT(child, 0);
  // The janitor watches the group of the pid SpawnChild got from
  // posix_spawn: setpriv's, which is the command's.
  ASSERT_EQ(server_->Signal(SIGKILL), 0);
  ASSERT_TRUE(server_->Wait(absl::Seconds(10)).ok());
  EXPECT_TRUE(
      WaitUntil([&] { return !testing::IsAlive(child); }, absl::Seconds(10)))
      << "the command " << child << " outlived the server";
}

// A server that is not root cannot switch accounts: it refuses the config.
TEST(CommandSafetyConfigTest, UserNeedsARootServer) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to start a server as nobody";
  TempDir dir;
  const std::string config = dir.Write(
      "remex.yaml",
      "functions:\n  - {name: x, command: [/bin/echo], user: root}\n");
  const Account nobody = Nobody();
  absl::StatusOr<testing::ProcessResult> run = testing::RunProcess(
      {kSetpriv, absl::StrCat("--reuid=", nobody.uid),
       absl::StrCat("--regid=", nobody.gid), "--clear-groups", "--",
       REMEX_SERVER_PATH, "--listen", "127.0.0.1:0", "--metrics-listen", "none",
       "--config", config},
      absl::Seconds(30));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->exit_code, 2) << run->err;
  EXPECT_TRUE(absl::StrContains(run->err, "not root")) << run->err;
}

}  // namespace
}  // namespace remex
