#include "tests/testing/postgres_server.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/free_port.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/wait.h"

namespace remex::testing {
namespace {

constexpr char kBinDir[] = "/usr/lib/postgresql/15/bin";
constexpr char kRunuser[] = "/usr/sbin/runuser";
// util-linux: unlike runuser, it execs the command in its own process (so
// the pid we spawn is the postmaster's) and can set a parent-death signal
// (kept across its uid change).
constexpr char kSetpriv[] = "/usr/bin/setpriv";
constexpr char kUser[] = "postgres";
constexpr absl::Duration kInitdbTimeout = absl::Seconds(120);
constexpr absl::Duration kReadyTimeout = absl::Seconds(30);
constexpr absl::Duration kStopTimeout = absl::Seconds(30);
constexpr int kPortAttempts = 5;
// A unix socket's path (sun_path) holds 107 bytes; the socket is
// DIR/.s.PGSQL.PORT, so DIR must stay well below.
constexpr size_t kLongestDir = 80;

absl::Status ErrnoError(absl::string_view what, int error) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(error)));
}

// Whether `pid` (our child) has exited; reaps it if so.
bool Exited(pid_t pid) {
  int status;
  const pid_t reaped = waitpid(pid, &status, WNOHANG);
  return reaped == pid || (reaped < 0 && errno == ECHILD);
}

// The directory the cluster goes in: the test's temp dir unless its path
// is too long for the unix socket.
std::string BaseDir() {
  std::string base = ::testing::TempDir();
  if (base.size() > kLongestDir - 30) base = "/tmp/";
  if (!absl::EndsWith(base, "/")) base += "/";
  return base;
}

struct PgConnCloser {
  void operator()(PGconn* connection) const { PQfinish(connection); }
};
struct PgResultCloser {
  void operator()(PGresult* result) const { PQclear(result); }
};

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  const bool as_root = geteuid() == 0;
  std::string root_template = absl::StrCat(BaseDir(), "remex_pg_XXXXXX");
  if (mkdtemp(root_template.data()) == nullptr) {
    return ErrnoError(absl::StrCat("mkdtemp ", root_template), errno);
  }
  std::unique_ptr<PostgresServer> server(new PostgresServer(
      root_template, absl::StrCat(root_template, "/data"), as_root));

  std::vector<std::string> initdb = {absl::StrCat(kBinDir, "/initdb"),
                                     "-D",
                                     server->data_dir_,
                                     "-A",
                                     "trust",
                                     "-U",
                                     kUser,
                                     "--no-sync",
                                     "-E",
                                     "UTF8",
                                     "--locale=C",
                                     "--no-instructions"};
  if (as_root) {
    const passwd* user = getpwnam(kUser);
    if (user == nullptr) {
      return absl::FailedPreconditionError(
          "running as root, but there is no `postgres` user to run initdb "
          "and postgres as (install postgresql-15)");
    }
    if (chown(server->root_dir_.c_str(), user->pw_uid, user->pw_gid) != 0) {
      return ErrnoError(absl::StrCat("chown ", server->root_dir_), errno);
    }
    initdb.insert(initdb.begin(), {kRunuser, "-u", kUser, "--"});
  }
  absl::StatusOr<ProcessResult> ran = RunProcess(initdb, kInitdbTimeout);
  if (!ran.ok()) return ran.status();
  if (ran->exit_code != 0) {
    return absl::InternalError(absl::StrCat("initdb exited ", ran->exit_code,
                                            ":\n", ran->out, ran->err));
  }

  absl::Status started;
  for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
    absl::StatusOr<int> port = FreeLoopbackPort();
    if (!port.ok()) return port.status();
    started = server->StartPostmaster(*port);
    if (started.ok()) server->port_ = *port;
    if (!absl::IsAborted(started)) break;
  }
  if (!started.ok()) return started;

  absl::StatusOr<std::vector<std::vector<std::string>>> created = server->Query(
      server->UrlOf("postgres"), "CREATE DATABASE remex TEMPLATE template0");
  if (!created.ok()) return created.status();
  return server;
}

PostgresServer::PostgresServer(std::string root_dir, std::string data_dir,
                               bool as_root)
    : root_dir_(std::move(root_dir)),
      data_dir_(std::move(data_dir)),
      log_path_(absl::StrCat(root_dir_, "/postgres.log")),
      as_root_(as_root) {}

PostgresServer::~PostgresServer() {
  (void)Stop();
  std::error_code ignored;
  std::filesystem::remove_all(root_dir_, ignored);
}

std::string PostgresServer::url() const { return UrlOf("remex"); }

std::string PostgresServer::UrlOf(const std::string& name) const {
  return absl::StrCat("postgresql://", kUser, "@127.0.0.1:", port_, "/", name);
}

absl::Status PostgresServer::StartPostmaster(int port) {
  std::vector<std::string> argv;
  if (access(kSetpriv, X_OK) == 0) {
    argv = {kSetpriv};
    if (as_root_) {
      argv.insert(argv.end(),
                  {absl::StrCat("--reuid=", kUser),
                   absl::StrCat("--regid=", kUser), "--init-groups"});
    }
    argv.insert(argv.end(), {"--pdeathsig", "KILL", "--"});
  } else if (as_root_) {
    return absl::FailedPreconditionError(
        absl::StrCat(kSetpriv, " is needed to run postgres as `postgres`"));
  }
  argv.insert(argv.end(), {absl::StrCat(kBinDir, "/postgres"), "-D", data_dir_,
                           "-p", absl::StrCat(port), "-c",
                           "listen_addresses=127.0.0.1", "-k", data_dir_});
  absl::StatusOr<pid_t> pid = SpawnInOwnGroup(argv, log_path_);
  if (!pid.ok()) return pid.status();
  pid_ = *pid;

  const std::string conninfo =
      absl::StrCat("host=127.0.0.1 port=", port, " user=", kUser,
                   " dbname=postgres connect_timeout=2");
  bool exited = false;
  const bool ready = WaitUntil(
      [&] {
        if (PQping(conninfo.c_str()) == PQPING_OK) return true;
        exited = Exited(*pid);
        return exited;
      },
      kReadyTimeout);
  if (ready && !exited) return absl::OkStatus();
  if (!exited) {
    (void)Stop();
    return absl::DeadlineExceededError(absl::StrCat(
        "postgres accepted no connection on 127.0.0.1:", port, " within ",
        absl::FormatDuration(kReadyTimeout), "; its log:\n", Log()));
  }
  pid_ = -1;
  const std::string log = Log();
  if (absl::StrContains(log, "could not create any TCP/IP sockets") ||
      absl::StrContains(log, "Address already in use")) {
    return absl::AbortedError(absl::StrCat("port ", port, " was taken"));
  }
  return absl::InternalError(
      absl::StrCat("postgres exited at start; its log:\n", log));
}

absl::Status PostgresServer::Stop() {
  const pid_t pid = pid_.exchange(-1);
  if (pid <= 0) return absl::OkStatus();
  if (kill(pid, SIGINT) != 0 && errno != ESRCH) {
    return ErrnoError("kill SIGINT postgres", errno);
  }
  if (WaitUntil([pid] { return Exited(pid); }, kStopTimeout)) {
    return absl::OkStatus();
  }
  // The postmaster's group also holds its children (backends, checkpointer).
  kill(-pid, SIGKILL);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return absl::DeadlineExceededError(
      absl::StrCat("postgres (pid ", pid, ") did not stop within ",
                   absl::FormatDuration(kStopTimeout), "; killed"));
}

absl::Status PostgresServer::Restart() {
  if (pid_.load() > 0) {
    return absl::FailedPreconditionError("postgres is running");
  }
  return StartPostmaster(port_);
}

absl::StatusOr<std::string> PostgresServer::CreateDatabase() {
  const std::string name = absl::StrCat("remex_", ++databases_);
  absl::StatusOr<std::vector<std::vector<std::string>>> created = Query(
      url(), absl::StrCat("CREATE DATABASE ", name, " TEMPLATE template0"));
  if (!created.ok()) return created.status();
  return UrlOf(name);
}

absl::StatusOr<std::vector<std::vector<std::string>>> PostgresServer::Query(
    const std::string& url, const std::string& sql) const {
  std::unique_ptr<PGconn, PgConnCloser> connection(PQconnectdb(url.c_str()));
  if (connection == nullptr) {
    return absl::ResourceExhaustedError("libpq could not allocate");
  }
  if (PQstatus(connection.get()) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to ", url, ": ", PQerrorMessage(connection.get())));
  }
  std::unique_ptr<PGresult, PgResultCloser> result(
      PQexec(connection.get(), sql.c_str()));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    return absl::InternalError(absl::StrCat(sql, ": ", PQresStatus(status),
                                            ": ",
                                            PQerrorMessage(connection.get())));
  }
  std::vector<std::vector<std::string>> rows(PQntuples(result.get()));
  const int columns = PQnfields(result.get());
  for (int row = 0; row < static_cast<int>(rows.size()); ++row) {
    for (int column = 0; column < columns; ++column) {
      rows[row].emplace_back(PQgetvalue(result.get(), row, column));
    }
  }
  return rows;
}

std::string PostgresServer::Log() const {
  std::ifstream file(log_path_);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

}  // namespace remex::testing
