// A durable store in memory for the executor's tests: it answers on its own
// thread, like a database store, and can be held (nothing commits until
// released) or taken down (inserts fail UNAVAILABLE, updates wait).
#ifndef REMEX_TESTS_EXECUTOR_FAKE_STORE_H_
#define REMEX_TESTS_EXECUTOR_FAKE_STORE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "server/executor/store.h"

namespace remex::executor::testing {

// Thread-safe. Callbacks run on the store's one thread, in the order the
// calls were made.
class FakeStore final : public Store {
 public:
  FakeStore();
  ~FakeStore() override;

  // Every task is the executor's to run (one replica).
  void Insert(TaskSnapshot task, bool run_here, InsertDone done) override;
  // A released task's row is QUEUED (the store records what it is given).
  void Update(TaskSnapshot task, absl::Time expire_at, bool release,
              UpdateDone done) override;
  // As Get: with one replica, the executor holds every unfinished task.
  void RequestCancel(std::string id, Visibility visibility,
                     GetDone done) override;
  void Erase(std::string id, Visibility visibility, EraseDone done) override;
  void Get(std::string id, Visibility visibility, GetDone done) override;
  void List(ListQuery query, Visibility visibility, ListDone done) override;
  absl::StatusOr<std::vector<TaskSnapshot>> LoadUnfinished() override;
  bool CanCommit() const override;
  // One replica: nothing to claim, no signals.
  void Attach(StoreRunner* /*runner*/) override {}
  void OnSlotFreed(const std::string& /*pool*/) override {}
  bool Shared() const override { return false; }
  void ListenForEnds(bool /*on*/) override {}

  // Holds every operation (none is answered) until Release().
  void Hold();
  void Release();
  // Down: inserts fail UNAVAILABLE at once; other operations wait for Up().
  void SetDown(bool down);

  // A committed row, as if written before the executor started.
  void Put(TaskSnapshot task);
  // The committed row of task `id`; NOT_FOUND if none.
  absl::StatusOr<TaskSnapshot> Row(const std::string& id) const;
  int64_t commits() const;
  // Operations waiting to be answered.
  size_t pending() const;

 private:
  using Operation = absl::AnyInvocable<void()>;
  void Enqueue(Operation operation);
  void Loop();
  bool Runnable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<TaskSnapshot> Visible(const std::string& id,
                                       const Visibility& visibility) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::deque<Operation> queue_ ABSL_GUARDED_BY(mu_);
  // Answered even while down (failed inserts).
  std::deque<Operation> urgent_ ABSL_GUARDED_BY(mu_);
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  bool down_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The operation being run (out of the queue, not yet done).
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, TaskSnapshot> rows_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::string> by_position_ ABSL_GUARDED_BY(mu_);
  uint64_t last_position_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t commits_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace remex::executor::testing

#endif  // REMEX_TESTS_EXECUTOR_FAKE_STORE_H_
