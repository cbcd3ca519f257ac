#include "monitoring/task_metrics.h"

#include <optional>
#include <utility>

#include "absl/strings/ascii.h"

namespace remex::monitoring {
namespace {

using executor::RejectReason;
using executor::TaskState;

constexpr RejectReason kRejectReasons[] = {
    RejectReason::kQueueFull, RejectReason::kDraining, RejectReason::kInvalid,
    RejectReason::kNotFound};
constexpr TaskState kFinalStates[] = {
    TaskState::kSucceeded, TaskState::kFailed, TaskState::kCancelled,
    TaskState::kTimedOut, TaskState::kWorkerLost};

// "succeeded", "timed_out", ...: the state label.
std::string StateLabel(TaskState state) {
  return absl::AsciiStrToLower(executor::TaskStateName(state));
}

double Seconds(absl::Duration duration) {
  return absl::ToDoubleSeconds(duration);
}

// The counters and histograms of one (pool, function) pair.
class Series final : public executor::TaskSeries {
 public:
  Series(prometheus::Counter& submitted, prometheus::Histogram& queue_seconds,
         prometheus::Histogram& run_seconds,
         std::array<prometheus::Counter*, std::size(kFinalStates)> completed)
      : submitted_(submitted),
        queue_seconds_(queue_seconds),
        run_seconds_(run_seconds),
        completed_(completed) {}

  void OnSubmitted() override { submitted_.Increment(); }
  void OnStarted(absl::Duration queued) override {
    queue_seconds_.Observe(Seconds(queued));
  }
  void OnFinished(TaskState state, std::optional<absl::Duration> ran) override {
    const int index =
        static_cast<int>(state) - static_cast<int>(TaskState::kSucceeded);
    if (index >= 0 && index < static_cast<int>(completed_.size())) {
      completed_[index]->Increment();
    }
    if (ran.has_value()) run_seconds_.Observe(Seconds(*ran));
  }

 private:
  prometheus::Counter& submitted_;
  prometheus::Histogram& queue_seconds_;
  prometheus::Histogram& run_seconds_;
  // Indexed by state - kSucceeded.
  const std::array<prometheus::Counter*, std::size(kFinalStates)> completed_;
};

}  // namespace

const prometheus::Histogram::BucketBoundaries& SecondsBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10,
          30,     60,      120,    300,   600,    1800,  3600};
  return *kBuckets;
}

TaskMetrics::TaskMetrics(prometheus::Registry& registry)
    : submitted_(prometheus::BuildCounter()
                     .Name("remex_tasks_submitted_total")
                     .Help("Tasks accepted, by pool and function.")
                     .Register(registry)),
      rejected_(prometheus::BuildCounter()
                    .Name("remex_tasks_rejected_total")
                    .Help("Tasks refused at submit, by pool and reason "
                          "(queue_full, draining, invalid, not_found); pool "
                          "is empty when the request named no known pool or "
                          "function.")
                    .Register(registry)),
      completed_(prometheus::BuildCounter()
                     .Name("remex_tasks_completed_total")
                     .Help("Tasks that reached a final state, by pool, "
                           "function and state.")
                     .Register(registry)),
      queue_seconds_(prometheus::BuildHistogram()
                         .Name("remex_task_queue_seconds")
                         .Help("Time from a task's creation to its start.")
                         .Register(registry)),
      run_seconds_(prometheus::BuildHistogram()
                       .Name("remex_task_run_seconds")
                       .Help("Time from a task's start to its end.")
                       .Register(registry)) {
  // Refusals of requests that name no known pool.
  ChildrenOf("");
}

TaskMetrics::PoolChildren& TaskMetrics::ChildrenOf(const std::string& pool) {
  {
    absl::ReaderMutexLock lock(&mu_);
    if (auto it = pools_.find(pool); it != pools_.end()) return *it->second;
  }
  absl::MutexLock lock(&mu_);
  std::unique_ptr<PoolChildren>& children = pools_[pool];
  if (children == nullptr) {
    children = std::make_unique<PoolChildren>();
    children->queue_seconds =
        &queue_seconds_.Add({{"pool", pool}}, SecondsBuckets());
    for (RejectReason reason : kRejectReasons) {
      children->rejected[static_cast<int>(reason)] = &rejected_.Add(
          {{"pool", pool},
           {"reason", std::string(executor::RejectReasonName(reason))}});
    }
  }
  return *children;
}

std::unique_ptr<executor::TaskSeries> TaskMetrics::AddSeries(
    const std::string& pool, const std::string& function) {
  PoolChildren& pool_children = ChildrenOf(pool);
  std::array<prometheus::Counter*, std::size(kFinalStates)> completed;
  for (size_t i = 0; i < std::size(kFinalStates); ++i) {
    completed[i] = &completed_.Add({{"pool", pool},
                                    {"function", function},
                                    {"state", StateLabel(kFinalStates[i])}});
  }
  const prometheus::Labels labels = {{"pool", pool}, {"function", function}};
  return std::make_unique<Series>(
      submitted_.Add(labels), *pool_children.queue_seconds,
      run_seconds_.Add(labels, SecondsBuckets()), completed);
}

void TaskMetrics::OnRejected(const std::string& pool, RejectReason reason) {
  ChildrenOf(pool).rejected[static_cast<int>(reason)]->Increment();
}

}  // namespace remex::monitoring
