// A process pool's supervisor: the one thread that spawns, feeds, watches,
// kills and reaps the pool's workers (process_pool.h is the pool it serves;
// worker_process.h the mechanics of one worker's life).
#ifndef REMEX_SERVER_PROCESS_SUPERVISOR_H_
#define REMEX_SERVER_PROCESS_SUPERVISOR_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "remex/worker/v1/worker.pb.h"
#include "server/executor/pool.h"
#include "server/executor/task.h"
#include "server/process/channel.h"

namespace remex::process {

class ProcessPool;

namespace internal {

// Wakes the supervisor's poll() from other threads. Shared with the done
// callbacks of dispatched tasks, which may outlive the pool.
//
// Thread-safe.
class Wakeup {
 public:
  Wakeup();
  ~Wakeup();
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;

  int fd() const { return fd_; }
  void Notify() const;
  void Drain() const;

 private:
  const int fd_;
};

// What a worker's Result says of its task: SUCCEEDED with the parsed
// result, or FAILED with the worker's code and message (a result_json that
// does not parse: FAILED, INTERNAL). The worker is the server binary, but
// the bytes come from a separate process running task code: nothing in
// them may crash the supervisor.
struct RunEnd {
  executor::TaskState state = executor::TaskState::kSucceeded;
  std::shared_ptr<const executor::TaskOutcome> outcome;
};
RunEnd RunEndFromResult(const remex::worker::v1::Result& result);

// One worker process, as the supervisor sees it.
struct Worker {
  pid_t pid = -1;
  int fd = -1;
  FrameReader reader;
  bool ready = false;
  bool retired = false;
  // The task it runs (null: idle), which attempt, and its channel seq.
  std::shared_ptr<executor::Task> task;
  int32_t attempt = 0;
  uint64_t seq = 0;
  // Set once the task ended elsewhere (cancel, timeout) and the worker was
  // asked to stop; past kill_at it is killed.
  bool cancel_sent = false;
  absl::Time kill_at = absl::InfiniteFuture();
  int64_t tasks_run = 0;
};

// The pool's supervisor thread: the only code that spawns, reads, writes,
// kills and reaps the workers. A worker it ends takes what it left running
// in its session with it.
//
// Thread-compatible: every method but Notify() and AwaitStartup() runs on
// the supervisor thread (Loop()), which must live as long as the workers
// (their PR_SET_PDEATHSIG fires when it ends).
class Supervisor {
 public:
  explicit Supervisor(ProcessPool& pool);

  void Notify() const { wakeup_->Notify(); }

  // OK once the first config().workers workers are ready; the first error
  // if one of them fails; UNAVAILABLE past `deadline`.
  absl::Status AwaitStartup(absl::Time deadline);

  // Runs the pool until it is stopping, then ends every worker.
  void Loop();

 private:
  // Why the supervisor ends a worker.
  enum class Ending { kDied, kKilledAfterCancel, kRecycled, kShutdown };
  // Why it starts one: the pool's first workers, the replacement of a
  // recycled one, or of one that died or was killed.
  enum class SpawnReason { kStart, kRecycle, kReplacement };

  absl::Status Spawn(SpawnReason reason);
  void FailStartup(absl::Status status);
  void Poll(absl::Time now);
  void ReadFrom(Worker& worker);
  void OnMessage(Worker& worker, const worker::v1::FromWorker& message);
  void OnResult(Worker& worker, const worker::v1::Result& result);
  void WatchCancels(absl::Time now);
  void Dispatch();
  bool StartTask(Worker& worker, std::shared_ptr<executor::Task> task);
  void End(Worker& worker, Ending ending, std::string why = "");
  // The log line of a worker's end (`status`: its wait status; `reason`:
  // as counted in restarts_).
  void LogEnd(const Worker& worker, Ending ending, int status,
              const std::string& why, const std::string& reason);
  void SettleLostTask(Worker& worker, const std::string& cause);
  void RespawnMissing(absl::Time now);
  void EraseRetired();
  void Publish();
  bool Stopping() const;

  ProcessPool& pool_;
  const executor::PoolConfig& config_;
  const std::shared_ptr<Wakeup> wakeup_;
  const std::vector<std::string> environment_;
  std::vector<std::unique_ptr<Worker>> workers_;
  uint64_t next_seq_ = 1;
  absl::Duration backoff_ = absl::ZeroDuration();
  absl::Time respawn_at_ = absl::InfinitePast();
  std::map<std::string, int64_t> restarts_;
  // Recycled workers not replaced yet (their replacements log at debug).
  int recycled_unreplaced_ = 0;
  log::RateLimit recycle_log_;

  int ready_once_ = 0;
  absl::Notification startup_done_;
  absl::Status startup_status_;  // Written before startup_done_ is notified.
};

}  // namespace internal
}  // namespace remex::process

#endif  // REMEX_SERVER_PROCESS_SUPERVISOR_H_
