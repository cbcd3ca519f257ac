// A real remex-server child process on 127.0.0.1 with a free port, for tests.
#ifndef REMEX_TESTS_TESTING_SERVER_PROCESS_H_
#define REMEX_TESTS_TESTING_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace remex::testing {

// Owns one remex-server process (REMEX_SERVER_PATH) started with
// `--listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0` (extra args may
// override either, e.g. `--metrics-listen none`) and a thread that collects its
// stdout and stderr. The destructor stops the server (SIGTERM, then SIGKILL
// after 5 s) if Wait() has not reaped it; if the test dies first, the server
// gets SIGKILL when the thread that started it ends (setpriv --pdeathsig), so
// start it on the test's own thread. The server gets a TMPDIR of its own
// (where command functions make their directories), removed by the
// destructor: a server or worker killed mid-command leaves nothing in /tmp.
// Thread-safe, except that Wait() and the destructor must not race.
class ServerProcess {
 public:
  // Starts the server with `extra_args` and waits (at most 20 s) until it
  // prints `listening on 127.0.0.1:PORT`.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      std::vector<std::string> extra_args = {});
  // Same, for another server binary that takes remex-server's flags (a
  // custom server built on remex::server::RunServer).
  static absl::StatusOr<std::unique_ptr<ServerProcess>> StartBinary(
      std::string binary, std::vector<std::string> extra_args = {});

  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // "127.0.0.1:PORT".
  const std::string& address() const { return address_; }
  // "127.0.0.1:PORT" of the metrics endpoint, from the line the server
  // prints right after its gRPC one; NOT_FOUND if it printed none within
  // `timeout` (metrics switched off).
  absl::StatusOr<std::string> MetricsAddress(
      absl::Duration timeout = absl::Seconds(5)) const;
  pid_t pid() const { return pid_; }

  // Sends `sig` to the server; returns kill()'s result.
  int Signal(int sig);
  // Waits up to `timeout` for the server to exit (then SIGKILLs it and
  // returns DEADLINE_EXCEEDED). Returns its exit code, 128 + signal if a
  // signal ended it.
  absl::StatusOr<int> Wait(absl::Duration timeout);

  // Lines the server printed so far on stdout and stderr, interleaved.
  std::vector<std::string> output() const;
  // output() as one string, for failure messages.
  std::string ServerOutput() const;

 private:
  ServerProcess(pid_t pid, int stdout_fd, int stderr_fd, std::string tmp_dir);

  // Reads both pipes until EOF or stop_; runs on reader_.
  void ReadOutput();
  // Appends `data` from `stream` (0 stdout, 1 stderr) to the output.
  void Consume(int stream, const char* data, size_t size);
  // Waits until the address is known or output ends, up to `deadline`.
  absl::Status AwaitAddress(absl::Time deadline);

  const pid_t pid_;
  const int stdout_fd_;
  const int stderr_fd_;
  const std::string tmp_dir_;  // The server's TMPDIR.
  std::string address_;        // Set once by Start() before it returns.
  bool reaped_ = false;        // Touched by Wait() and the destructor only.

  mutable absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
  std::string partial_[2] ABSL_GUARDED_BY(mu_);  // [0] stdout, [1] stderr
  std::string listening_ ABSL_GUARDED_BY(mu_);   // "127.0.0.1:PORT"
  std::string metrics_listening_ ABSL_GUARDED_BY(mu_);
  bool output_closed_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reader_;
};

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_SERVER_PROCESS_H_
