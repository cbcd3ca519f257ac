// A real PostgreSQL 15 server for tests: initdb into a fresh temp dir,
// `postgres` on a free 127.0.0.1 port, stopped and removed at the end.
#ifndef REMEX_TESTS_TESTING_POSTGRES_SERVER_H_
#define REMEX_TESTS_TESTING_POSTGRES_SERVER_H_

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace remex::testing {

// Owns one PostgreSQL cluster (a temp dir) and its postmaster, which listens
// on 127.0.0.1:port() and on a unix socket in the cluster's dir, with trust
// authentication for the superuser `postgres`, fsync and synchronous_commit
// on (commits are real: the durability tests count on them). When the test
// runs as root, initdb and postgres run as the `postgres` user (they refuse
// root) and the dir belongs to it.
//
// The postmaster runs in its own process group and gets SIGKILL if the
// thread that started it ends first (setpriv --pdeathsig), as ServerProcess
// does: start it (and Restart it) on the test's own thread, e.g. in
// SetUpTestSuite, since initdb takes seconds; tests sharing one server stay
// apart with CreateDatabase(). The destructor stops the postmaster (fast
// shutdown, SIGKILL to its group after a bounded wait) and removes the dir.
//
// Thread-safety: url(), port(), pid(), CreateDatabase() and Query() may be
// called from any thread; Stop(), Restart() and the destructor must not run
// concurrently with each other.
class PostgresServer {
 public:
  // Creates the cluster, starts the postmaster on a free port (another port
  // if the one picked was taken meanwhile), waits (at most 30 s) until it
  // accepts connections and creates the database `remex`.
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start();

  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // "postgresql://postgres@127.0.0.1:PORT/remex".
  std::string url() const;
  int port() const { return port_; }
  // The postmaster's pid; -1 while it is stopped. After Stop() or the
  // destructor the process that had this pid has been reaped.
  pid_t pid() const { return pid_.load(); }
  // The cluster's dir (its data dir, which also holds the unix socket).
  const std::string& data_dir() const { return data_dir_; }

  // Creates a fresh, uniquely named database (from template0) and returns
  // its URL, like url() with another database name.
  absl::StatusOr<std::string> CreateDatabase();

  // Fast shutdown: SIGINT to the postmaster, which rolls back open
  // transactions and ends every connection; waits (at most 30 s, then
  // SIGKILL to its group) until it has exited. OK if already stopped.
  absl::Status Stop();
  // Starts the postmaster again on the same dir and port and waits until it
  // accepts connections. FAILED_PRECONDITION if it is running.
  absl::Status Restart();

  // Runs `sql` (one or more statements) on the database at `url` through
  // libpq and returns the rows of the last statement's result as text (NULL
  // as ""); empty for a statement that returns no rows. UNAVAILABLE if it
  // cannot connect, INTERNAL with the server's message if `sql` fails.
  absl::StatusOr<std::vector<std::vector<std::string>>> Query(
      const std::string& url, const std::string& sql) const;

  // The postmaster's log (its stdout and stderr) so far, for failure
  // messages.
  std::string Log() const;

 private:
  PostgresServer(std::string root_dir, std::string data_dir, bool as_root);

  // Starts the postmaster on `port` and waits until it accepts connections.
  // ABORTED if it exits because the port is taken (the caller picks another).
  absl::Status StartPostmaster(int port);
  // URL of database `name` on this server.
  std::string UrlOf(const std::string& name) const;

  const std::string root_dir_;  // Removed by the destructor.
  const std::string data_dir_;  // root_dir_/data
  const std::string log_path_;  // root_dir_/postgres.log
  const bool as_root_;          // Run initdb and postgres as `postgres`.
  int port_ = 0;                // Set by Start(), never changed after.
  std::atomic<pid_t> pid_{-1};
  std::atomic<int> databases_{0};  // Names the next CreateDatabase().
};

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_POSTGRES_SERVER_H_
