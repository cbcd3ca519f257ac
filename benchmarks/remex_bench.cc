// remex-bench: end-to-end load generator. Measures remex-server (a child it
// starts on 127.0.0.1 port 0, or --target) side by side with a bare gRPC
// echo service built from the same gRPC in this process, and prints one
// table with ratios. With --store, also a durable remex-server against a
// bare PostgreSQL client (pg_baseline.h). See BENCHMARKS.md for the
// scenarios and the targets.
//
//   build/benchmarks/remex-bench                 (every scenario, full size)
//   build/benchmarks/remex-bench --smoke         (tiny sizes, a few seconds)
//   build/benchmarks/remex-bench --help
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench_echo.grpc.pb.h"
#include "echo_service.h"
#include "nlohmann/json.hpp"
#include "pg_baseline.h"
#include "remex/remex.h"
#include "remex/v1/executor.grpc.pb.h"
#include "server/auth/principals.h"
#include "server/store/postgres/pg.h"
#include "server_child.h"
#ifdef REMEX_BENCH_POSTGRES_FIXTURE
#include "tests/testing/postgres_server.h"
#endif

namespace remex::bench {
namespace {

// Runs this binary as the echo baseline's server (see ServeEcho); not for
// users, so not in the usage.
constexpr char kServeEcho[] = "--serve-echo";

constexpr char kUsage[] =
    R"(remex-bench: end-to-end benchmarks of remex-server against a bare gRPC echo
service (same gRPC, same machine, same run).

usage: remex-bench [flags]

  --scenarios LIST        comma-separated, default all:
                          rtt,throughput,cpu,sleep,awaiters,retention;
                          and steady (named only; needs --store)
  --repeat N              runs of each scenario; the table shows medians (3)
  --smoke                 every scenario at tiny sizes (a few seconds), 1 run
  --target HOST:PORT      use a running server instead of starting one; it
                          needs pools "cpu" and "io" (see BENCHMARKS.md) or
                          falls back to "default"
  --server-pid PID        with --target: the server's pid, for threads/RSS
  --server-binary PATH    remex-server to start (default: next to this binary,
                          ../server/remex-server)
  --json FILE             also write the results as JSON
  --tls                   also runs the SDK rows of rtt and throughput against
                          a second remex-server serving TLS (a CA and a
                          certificate made with `openssl` in a temp dir),
                          sending a bearer token; those rows' baseline is the
                          plaintext SDK figure of the same run (not with
                          --target)
  --store URL|postgres    durable rows: rtt and throughput also run against a
                          remex-server started with --store (a fresh schema
                          of the database at URL per run, dropped after it;
                          "postgres": a PostgreSQL of its own, initdb in a
                          temp dir), next to a bare PostgreSQL client running
                          the store's statements; enables scenario "steady"
                          (not with --target)
  sizes:
  --rtt-samples N         round trips per rtt row (2000)
  --tasks N               throughput: tasks per row (100000)
  --window N              throughput: tasks / messages in flight (1000)
  --client-threads N      throughput: SDK caller threads sharing the window (4)
  --cpu-tasks N, --cpu-ms MS                 cpu: spin tasks (200, 10)
  --sleep-tasks N, --sleep-ms MS, --parallelism P
                                             sleep: (1000, 10, 100)
  --awaiters N            parked Await calls (10000)
  --retention-tasks N     retained finished tasks (1000000)
  --steady-seconds N      steady (only when named in --scenarios; needs
                          --store): how long a constant load runs (600)
  --steady-rate N         steady: submits per second (5000)
  --steady-ttl N          steady: the server's retention ttl, seconds (30)
  --steady-sample N       steady: seconds between samples of the tables (30)
)";

// Every scenario; all but "steady" run by default.
const std::vector<std::string>& KnownScenarios() {
  static const auto* const kKnown = new std::vector<std::string>{
      "rtt", "throughput", "cpu", "sleep", "awaiters", "retention", "steady"};
  return *kKnown;
}

// ---------------------------------------------------------------- options

struct Options {
  std::vector<std::string> scenarios = {"rtt",   "throughput", "cpu",
                                        "sleep", "awaiters",   "retention"};
  int repeat = 3;
  bool smoke = false;
  std::string target;
  pid_t server_pid = 0;
  std::string server_binary;
  std::string json_path;
  bool tls = false;
  int64_t rtt_samples = 2000;
  int64_t tasks = 100000;
  int64_t window = 1000;
  int client_threads = 4;
  int64_t cpu_tasks = 200;
  int64_t cpu_ms = 10;
  int64_t sleep_tasks = 1000;
  int64_t sleep_ms = 10;
  int64_t parallelism = 100;
  int64_t awaiters = 10000;
  int64_t retention_tasks = 1000000;
  // "" or "memory": no durable rows; "postgres": start a PostgreSQL;
  // otherwise a libpq URL.
  std::string store;
  int64_t steady_seconds = 600;
  int64_t steady_rate = 5000;
  int64_t steady_ttl = 30;
  int64_t steady_sample = 30;
};

void ApplySmokeSizes(Options& options) {
  options.repeat = 1;
  options.rtt_samples = 50;
  options.tasks = 500;
  options.window = 50;
  options.client_threads = 2;
  options.cpu_tasks = 8;
  options.cpu_ms = 5;
  options.sleep_tasks = 40;
  options.sleep_ms = 5;
  options.parallelism = 10;
  options.awaiters = 200;
  options.retention_tasks = 2000;
  options.steady_seconds = 6;
  options.steady_rate = 200;
  options.steady_ttl = 2;
  options.steady_sample = 2;
}

absl::StatusOr<Options> ParseFlags(int argc, char** argv) {
  Options options;
  std::map<std::string, int64_t*> sizes = {
      {"--rtt-samples", &options.rtt_samples},
      {"--tasks", &options.tasks},
      {"--window", &options.window},
      {"--cpu-tasks", &options.cpu_tasks},
      {"--cpu-ms", &options.cpu_ms},
      {"--sleep-tasks", &options.sleep_tasks},
      {"--sleep-ms", &options.sleep_ms},
      {"--parallelism", &options.parallelism},
      {"--awaiters", &options.awaiters},
      {"--retention-tasks", &options.retention_tasks},
      {"--steady-seconds", &options.steady_seconds},
      {"--steady-rate", &options.steady_rate},
      {"--steady-ttl", &options.steady_ttl},
      {"--steady-sample", &options.steady_sample}};
  // --smoke first, so that explicit sizes given with it still apply.
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--smoke") {
      options.smoke = true;
      ApplySmokeSizes(options);
    }
  }
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--smoke") continue;
    if (flag == "--tls") {
      options.tls = true;
      continue;
    }
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": unknown flag or missing value"));
    }
    const std::string value = argv[++i];
    int64_t number = 0;
    const bool numeric = absl::SimpleAtoi(value, &number) && number > 0;
    if (auto it = sizes.find(flag); it != sizes.end()) {
      if (!numeric) {
        return absl::InvalidArgumentError(absl::StrCat(
            flag, ": expected a positive number, got '", value, "'"));
      }
      *it->second = number;
    } else if (flag == "--repeat" || flag == "--client-threads" ||
               flag == "--server-pid") {
      if (!numeric) {
        return absl::InvalidArgumentError(absl::StrCat(
            flag, ": expected a positive number, got '", value, "'"));
      }
      if (flag == "--repeat") options.repeat = static_cast<int>(number);
      if (flag == "--client-threads") {
        options.client_threads = static_cast<int>(number);
      }
      if (flag == "--server-pid")
        options.server_pid = static_cast<pid_t>(number);
    } else if (flag == "--scenarios") {
      options.scenarios = absl::StrSplit(value, ',', absl::SkipEmpty());
      for (const std::string& name : options.scenarios) {
        const std::vector<std::string>& kKnown = KnownScenarios();
        if (std::find(kKnown.begin(), kKnown.end(), name) == kKnown.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat("--scenarios: unknown scenario '", name,
                           "' (known: ", absl::StrJoin(kKnown, ","), ")"));
        }
      }
    } else if (flag == "--target") {
      options.target = value;
    } else if (flag == "--server-binary") {
      options.server_binary = value;
    } else if (flag == "--json") {
      options.json_path = value;
    } else if (flag == "--store") {
      options.store = value == "memory" ? "" : value;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", flag));
    }
  }
  if (options.tls && !options.target.empty()) {
    return absl::InvalidArgumentError(
        "--tls starts a TLS server of its own: not with --target");
  }
  if (!options.store.empty() && !options.target.empty()) {
    return absl::InvalidArgumentError(
        "--store starts durable servers of its own: not with --target");
  }
  if (std::find(options.scenarios.begin(), options.scenarios.end(), "steady") !=
          options.scenarios.end() &&
      options.store.empty()) {
    return absl::InvalidArgumentError(
        "scenario steady measures the durable store: give --store");
  }
  if (options.server_binary.empty()) {
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    std::string dir = n > 0 ? std::string(self, n) : std::string(argv[0]);
    dir = dir.substr(0, dir.rfind('/'));
    options.server_binary = dir + "/../server/remex-server";
  }
  return options;
}

// ---------------------------------------------------------------- results

struct Target {
  enum Kind {
    kNone,
    kRatioAtMost,
    kRatioAtLeast,
    kAtLeast,
    kAtMost
  } kind = kNone;
  double bound = 0;
};

// One row of the table: a metric measured once per run.
struct Row {
  std::string scenario;
  std::string metric;
  std::string unit;
  std::vector<double> remex;
  std::vector<double> baseline;  // empty: no baseline
  Target target;
};

double Median(std::vector<double> values) {
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Collects rows in the order they are first reported.
class Report {
 public:
  void Add(const std::string& scenario, const std::string& metric,
           const std::string& unit, double remex,
           std::optional<double> baseline = std::nullopt, Target target = {}) {
    Row& row = Find(scenario, metric);
    row.unit = unit;
    row.target = target;
    row.remex.push_back(remex);
    if (baseline.has_value()) row.baseline.push_back(*baseline);
  }
  void Fail(const std::string& scenario, const std::string& error) {
    errors_.push_back(absl::StrCat(scenario, ": ", error));
  }
  const std::vector<Row>& rows() const { return rows_; }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  Row& Find(const std::string& scenario, const std::string& metric) {
    for (Row& row : rows_) {
      if (row.scenario == scenario && row.metric == metric) return row;
    }
    rows_.push_back({.scenario = scenario, .metric = metric});
    return rows_.back();
  }
  std::vector<Row> rows_;
  std::vector<std::string> errors_;
};

std::string FormatNumber(double value) {
  if (std::isnan(value)) return "-";
  const double magnitude = std::fabs(value);
  if (magnitude >= 100 || value == std::floor(value)) {
    return absl::StrFormat("%.0f", value);
  }
  if (magnitude >= 10) return absl::StrFormat("%.1f", value);
  return absl::StrFormat("%.2f", value);
}

std::string FormatTarget(const Target& target) {
  switch (target.kind) {
    case Target::kNone:
      return "-";
    case Target::kRatioAtMost:
      return absl::StrCat("ratio<=", FormatNumber(target.bound));
    case Target::kRatioAtLeast:
      return absl::StrCat("ratio>=", FormatNumber(target.bound));
    case Target::kAtLeast:
      return absl::StrCat(">=", FormatNumber(target.bound));
    case Target::kAtMost:
      return absl::StrCat("<=", FormatNumber(target.bound));
  }
  return "-";
}

// "pass", "FAIL" or "-" (no target).
std::string Verdict(const Target& target, double remex, double ratio) {
  switch (target.kind) {
    case Target::kNone:
      return "-";
    case Target::kRatioAtMost:
      return ratio <= target.bound ? "pass" : "FAIL";
    case Target::kRatioAtLeast:
      return ratio >= target.bound ? "pass" : "FAIL";
    case Target::kAtLeast:
      return remex >= target.bound ? "pass" : "FAIL";
    case Target::kAtMost:
      return remex <= target.bound ? "pass" : "FAIL";
  }
  return "-";
}

struct TableLine {
  std::string cells[7];
};

std::vector<TableLine> TableOf(const Report& report) {
  std::vector<TableLine> lines;
  lines.push_back({{"scenario", "metric", "remex", "baseline", "ratio",
                    "target", "result"}});
  for (const Row& row : report.rows()) {
    const double remex = Median(row.remex);
    const double baseline = Median(row.baseline);
    const double ratio = row.baseline.empty() ? std::nan("") : remex / baseline;
    lines.push_back(
        {{row.scenario, absl::StrCat(row.metric, " (", row.unit, ")"),
          FormatNumber(remex), FormatNumber(baseline), FormatNumber(ratio),
          FormatTarget(row.target), Verdict(row.target, remex, ratio)}});
  }
  return lines;
}

void PrintTable(const Report& report) {
  const std::vector<TableLine> lines = TableOf(report);
  size_t widths[7] = {};
  for (const TableLine& line : lines) {
    for (int i = 0; i < 7; ++i) {
      widths[i] = std::max(widths[i], line.cells[i].size());
    }
  }
  auto print = [&](const TableLine& line) {
    std::string text = "|";
    for (int i = 0; i < 7; ++i) {
      const std::string& cell = line.cells[i];
      const std::string pad(widths[i] - cell.size(), ' ');
      // Text left, numbers right.
      text += i < 2 || i >= 5 ? absl::StrCat(" ", cell, pad, " |")
                              : absl::StrCat(" ", pad, cell, " |");
    }
    std::printf("%s\n", text.c_str());
  };
  print(lines[0]);
  std::string rule = "|";
  for (int i = 0; i < 7; ++i) rule += std::string(widths[i] + 2, '-') + "|";
  std::printf("%s\n", rule.c_str());
  for (size_t i = 1; i < lines.size(); ++i) print(lines[i]);
}

// ---------------------------------------------------------------- machine

std::string CpuModel() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      return std::string(
          absl::StripAsciiWhitespace(line.substr(line.find(':') + 1)));
    }
  }
  return "unknown";
}

std::string MachineLine() {
  utsname uts{};
  uname(&uts);
  return absl::StrCat("nproc ", std::thread::hardware_concurrency(), ", ",
                      CpuModel(), ", ", uts.sysname, " ", uts.release);
}

// ---------------------------------------------------------------- helpers

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// p in [0, 1] of `samples` (sorted in place).
double Percentile(std::vector<double>& samples, double p) {
  if (samples.empty()) return std::nan("");
  std::sort(samples.begin(), samples.end());
  const size_t at =
      std::min(samples.size() - 1, static_cast<size_t>(p * samples.size()));
  return samples[at];
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  // A channel of its own (not shared with other channels to the same
  // address), so that rows do not share a connection by accident.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

google::protobuf::Value MsArgs(int64_t ms) {
  google::protobuf::Value args;
  (*args.mutable_struct_value()->mutable_fields())["ms"].set_number_value(
      static_cast<double>(ms));
  return args;
}

// A client completion queue with one thread that runs each event's tag.
class ClientQueue {
 public:
  class Op {
   public:
    virtual ~Op() = default;
    virtual void Done(bool ok) = 0;
  };

  ClientQueue()
      : thread_([this] {
          void* tag = nullptr;
          bool ok = false;
          while (cq_.Next(&tag, &ok)) static_cast<Op*>(tag)->Done(ok);
        }) {}
  ~ClientQueue() {
    cq_.Shutdown();
    thread_.join();
  }
  grpc::CompletionQueue* cq() { return &cq_; }

 private:
  grpc::CompletionQueue cq_;
  std::thread thread_;
};

// Counts the operations of a windowed run and remembers its first error.
// Thread-safe.
class RunState {
 public:
  explicit RunState(int64_t total) : total_(total) {}

  // The index of the next unit of work, or -1 when all are handed out.
  int64_t Take() {
    const int64_t index = next_.fetch_add(1);
    return index < total_ ? index : -1;
  }
  void Complete() {
    if (done_.fetch_add(1) + 1 == total_) all_done_.Notify();
  }
  void Error(std::string message) {
    {
      absl::MutexLock lock(&mu_);
      if (error_.empty()) error_ = std::move(message);
    }
    Complete();
  }
  // Waits for every unit; the first error, if any.
  absl::Status Wait(absl::Duration timeout) {
    if (!all_done_.WaitForNotificationWithTimeout(timeout)) {
      return absl::DeadlineExceededError(
          absl::StrCat(done_.load(), " of ", total_, " done after ",
                       absl::FormatDuration(timeout)));
    }
    absl::MutexLock lock(&mu_);
    return error_.empty() ? absl::OkStatus() : absl::InternalError(error_);
  }

 private:
  const int64_t total_;
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> done_{0};
  absl::Notification all_done_;
  absl::Mutex mu_;
  std::string error_ ABSL_GUARDED_BY(mu_);
};

// One slot of a window: runs tasks one after another with unary Submit then
// Await until the run has handed out all of them. Deletes itself at the end.
class SubmitAwaitSlot final : public ClientQueue::Op {
 public:
  SubmitAwaitSlot(v1::Executor::Stub* stub, grpc::CompletionQueue* cq,
                  const v1::SubmitRequest& request, RunState* run)
      : stub_(stub), cq_(cq), request_(request), run_(run) {}

  void Start() {
    if (run_->Take() < 0) {
      delete this;
      return;
    }
    awaiting_ = false;
    context_ = std::make_unique<grpc::ClientContext>();
    submit_ = stub_->AsyncSubmit(context_.get(), request_, cq_);
    submit_->Finish(&task_, &status_, this);
  }

  void Done(bool ok) override {
    if (!ok || !status_.ok()) {
      run_->Error(absl::StrCat(awaiting_ ? "Await" : "Submit", ": ",
                               status_.error_message()));
      Start();
      return;
    }
    if (awaiting_ && client_terminal(task_.state())) {
      if (task_.state() == v1::SUCCEEDED) {
        run_->Complete();
      } else {
        run_->Error(absl::StrCat("task ", task_.id(), " ended ",
                                 v1::State_Name(task_.state()), ": ",
                                 task_.error().message()));
      }
      Start();
      return;
    }
    // Submitted, or an Await that timed out: (re-)await.
    awaiting_ = true;
    v1::AwaitRequest await;
    await.set_id(task_.id());
    await.mutable_timeout()->set_seconds(60);
    context_ = std::make_unique<grpc::ClientContext>();
    await_ = stub_->AsyncAwait(context_.get(), await, cq_);
    await_->Finish(&task_, &status_, this);
  }

 private:
  static bool client_terminal(v1::State state) {
    return state >= v1::SUCCEEDED;
  }

  v1::Executor::Stub* const stub_;
  grpc::CompletionQueue* const cq_;
  const v1::SubmitRequest& request_;
  RunState* const run_;
  bool awaiting_ = false;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::Task>> submit_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::Task>> await_;
  v1::Task task_;
  grpc::Status status_;
};

// Runs `request` `total` times with `window` Submit+Await chains in flight;
// the wall time in seconds.
absl::StatusOr<double> RunSubmitAwaitWindow(v1::Executor::Stub& stub,
                                            const v1::SubmitRequest& request,
                                            int64_t total, int64_t window) {
  RunState run(total);
  ClientQueue queue;  // destroyed (drained) before `run`
  const int64_t start = NowNanos();
  for (int64_t i = 0; i < std::min(window, total); ++i) {
    (new SubmitAwaitSlot(&stub, queue.cq(), request, &run))->Start();
  }
  if (absl::Status status = run.Wait(absl::Minutes(30)); !status.ok()) {
    return status;
  }
  return (NowNanos() - start) / 1e9;
}

// One slot of a window of unary echo calls.
class EchoSlot final : public ClientQueue::Op {
 public:
  EchoSlot(Echo::Stub* stub, grpc::CompletionQueue* cq, RunState* run)
      : stub_(stub), cq_(cq), run_(run) {}
  void Start() {
    if (run_->Take() < 0) {
      delete this;
      return;
    }
    context_ = std::make_unique<grpc::ClientContext>();
    call_ = stub_->AsyncUnary(context_.get(), request_, cq_);
    call_->Finish(&response_, &status_, this);
  }
  void Done(bool ok) override {
    if (ok && status_.ok()) {
      run_->Complete();
    } else {
      run_->Error(absl::StrCat("Echo: ", status_.error_message()));
    }
    Start();
  }

 private:
  Echo::Stub* const stub_;
  grpc::CompletionQueue* const cq_;
  RunState* const run_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<EchoMessage>> call_;
  EchoMessage request_;
  EchoMessage response_;
  grpc::Status status_;
};

absl::StatusOr<double> RunEchoWindow(Echo::Stub& stub, int64_t total,
                                     int64_t window) {
  RunState run(total);
  ClientQueue queue;  // destroyed (drained) before `run`
  const int64_t start = NowNanos();
  for (int64_t i = 0; i < std::min(window, total); ++i) {
    (new EchoSlot(&stub, queue.cq(), &run))->Start();
  }
  if (absl::Status status = run.Wait(absl::Minutes(30)); !status.ok()) {
    return status;
  }
  return (NowNanos() - start) / 1e9;
}

// `total` messages over one echo stream, at most `window` unanswered; the
// wall time in seconds. All tags complete on the queue's one thread.
absl::StatusOr<double> RunStreamWindow(Echo::Stub& stub, int64_t total,
                                       int64_t window) {
  struct Stream {
    struct Tag final : ClientQueue::Op {
      Tag(Stream* s, void (Stream::*on)(bool)) : stream(s), on(on) {}
      void Done(bool ok) override { (stream->*on)(ok); }
      Stream* stream;
      void (Stream::*on)(bool);
    };
    void OnStart(bool ok) {
      if (!ok) return Fail("stream did not start");
      call->Read(&in, &read_tag);
      MaybeWrite();
    }
    void MaybeWrite() {
      if (writing || sent == total || sent - received >= window) return;
      writing = true;
      out.set_sequence(static_cast<uint64_t>(sent++));
      call->Write(out, &write_tag);
    }
    void OnWrite(bool ok) {
      writing = false;
      if (!ok) return Fail("write failed");
      if (received == total) return CloseWrites();
      MaybeWrite();
    }
    // Only once no write is pending (one outstanding write at a time).
    void CloseWrites() { call->WritesDone(&writes_done_tag); }
    void OnRead(bool ok) {
      if (!ok) return Fail("read failed");
      ++received;
      if (received == total) {
        if (!writing) CloseWrites();
        return;
      }
      call->Read(&in, &read_tag);
      MaybeWrite();
    }
    void OnWritesDone(bool) { call->Finish(&status, &finish_tag); }
    void OnFinish(bool) {
      if (!status.ok()) error = status.error_message();
      done.Notify();
    }
    void Fail(const char* what) {
      if (!done.HasBeenNotified()) {
        error = what;
        done.Notify();
      }
    }

    int64_t total = 0;
    int64_t window = 0;
    int64_t sent = 0;
    int64_t received = 0;
    bool writing = false;
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientAsyncReaderWriter<EchoMessage, EchoMessage>>
        call;
    EchoMessage in, out;
    grpc::Status status;
    std::string error;
    absl::Notification done;
    Tag start_tag{this, &Stream::OnStart};
    Tag read_tag{this, &Stream::OnRead};
    Tag write_tag{this, &Stream::OnWrite};
    Tag writes_done_tag{this, &Stream::OnWritesDone};
    Tag finish_tag{this, &Stream::OnFinish};
  };
  Stream stream;
  ClientQueue queue;  // destroyed (drained) before `stream`
  stream.total = total;
  stream.window = window;
  const int64_t start = NowNanos();
  // Prepared, then started: the start tag may complete at once, and its
  // handler uses `call`.
  stream.call = stub.PrepareAsyncStream(&stream.context, queue.cq());
  stream.call->StartCall(&stream.start_tag);
  if (!stream.done.WaitForNotificationWithTimeout(absl::Minutes(30))) {
    stream.context.TryCancel();
    return absl::DeadlineExceededError("echo stream did not finish");
  }
  const double seconds = (NowNanos() - start) / 1e9;
  if (!stream.error.empty()) {
    stream.context.TryCancel();
    return absl::InternalError(stream.error);
  }
  return seconds;
}

// ---------------------------------------------------------------- servers

// The config of a server started by remex-bench: the built-in default pool,
// "cpu" (one worker per core, for the cpu scenario), "io" (one worker per
// task in flight, for the sleep scenario), and a process pool when
// `process_pool`.
std::string ServerConfig(const Options& options, bool process_pool,
                         int64_t retention_tasks, const std::string& ttl) {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  nlohmann::json pools = nlohmann::json::array();
  pools.push_back({{"name", "default"},
                   {"kind", "thread"},
                   {"workers", std::min(cores + 4, 32)},
                   {"max_queue", 1 << 20}});
  pools.push_back({{"name", "cpu"}, {"kind", "thread"}, {"workers", cores}});
  pools.push_back(
      {{"name", "io"}, {"kind", "thread"}, {"workers", options.parallelism}});
  if (process_pool) {
    pools.push_back(
        {{"name", "process"}, {"kind", "process"}, {"workers", cores}});
  }
  nlohmann::json config = {{"pools", pools},
                           {"retention",
                            {{"ttl", ttl},
                             {"max_tasks", retention_tasks},
                             {"max_bytes", int64_t{1} << 40}}}};
  return config.dump();
}

// A temporary file that holds `text`; removed by the destructor.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    char path[] = "/tmp/remex-bench-XXXXXX.json";
    const int fd = mkstemps(path, 5);
    if (fd >= 0) {
      path_ = path;
      (void)!write(fd, text.data(), text.size());
      close(fd);
    }
  }
  ~TempFile() {
    if (!path_.empty()) unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct StartedServer {
  std::unique_ptr<TempFile> config;
  std::unique_ptr<ServerChild> child;
};

// Starts remex-server with a bench config; with a process pool first, and
// without it if the server refuses that (process pools land separately).
absl::StatusOr<StartedServer> StartServer(
    const Options& options, int64_t retention_tasks,
    const std::vector<std::string>& extra_args = {},
    const std::string& ttl = "1h") {
  absl::Status last;
  for (bool process_pool : {true, false}) {
    StartedServer server;
    server.config = std::make_unique<TempFile>(
        ServerConfig(options, process_pool, retention_tasks, ttl));
    std::vector<std::string> args = {"--config", server.config->path()};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    absl::StatusOr<std::unique_ptr<ServerChild>> child =
        ServerChild::Start(options.server_binary, args);
    if (child.ok()) {
      server.child = *std::move(child);
      return server;
    }
    last = child.status();
  }
  return last;
}

// ---------------------------------------------------------------- scenarios

// What the scenarios share: the server under test and the baseline.
struct Bench {
  Options options;
  std::string address;                // remex-server
  pid_t server_pid = 0;               // 0: unknown (remote)
  std::unique_ptr<ServerChild> echo;  // this binary with --serve-echo
  std::unique_ptr<Echo::Stub> echo_stub;
  std::unique_ptr<v1::Executor::Stub> stub;
  std::vector<v1::PoolInfo> pools;
  Report report;
  // With --tls: the TLS server and how the SDK reaches it.
  std::string tls_address;
  ClientOptions tls_client;
  // With --store: the database's URL (each durable run gets a fresh schema
  // in it), and the steady scenario's table, printed after the main one.
  std::string store_url;
  std::vector<std::string> steady_table;
};

// A remex-server with --store on a fresh schema of the bench's database.
// Members in this order: the server stops before the schema is dropped.
struct DurableServer {
  std::unique_ptr<FreshSchema> schema;
  StartedServer server;
  std::string metrics_address;
};

// The durable server's group commits so far, from its metrics
// (remex_store_commit_batch_tasks: one observation per commit, of its task
// writes).
struct CommitCounts {
  double commits = 0;
  double writes = 0;
};

absl::StatusOr<CommitCounts> ScrapeCommits(const DurableServer& durable) {
  absl::StatusOr<double> commits = ScrapeMetric(
      durable.metrics_address, "remex_store_commit_batch_tasks_count");
  absl::StatusOr<double> writes = ScrapeMetric(
      durable.metrics_address, "remex_store_commit_batch_tasks_sum");
  if (!commits.ok()) return commits.status();
  if (!writes.ok()) return writes.status();
  return CommitCounts{*commits, *writes};
}

// Rows of what the store's group commit did for `tasks` tasks between two
// scrapes: tasks per commit and task writes (inserts and updates handed to
// the store) per task.
void AddCommitRows(Report& report, const std::string& scenario,
                   const std::string& what, double tasks,
                   const absl::StatusOr<CommitCounts>& before,
                   const absl::StatusOr<CommitCounts>& after) {
  if (!before.ok() || !after.ok()) {
    return report.Fail(
        scenario,
        std::string(
            (before.ok() ? after.status() : before.status()).message()));
  }
  const double commits = after->commits - before->commits;
  const double writes = after->writes - before->writes;
  report.Add(scenario, absl::StrCat("store: tasks per commit, ", what), "tasks",
             commits > 0 ? tasks / commits : 0);
  report.Add(scenario, absl::StrCat("store: task writes per task, ", what),
             "writes", writes / tasks);
}

absl::StatusOr<std::unique_ptr<DurableServer>> StartDurableServer(
    const Bench& bench, int64_t retention_tasks,
    const std::string& ttl = "1h") {
  auto durable = std::make_unique<DurableServer>();
  absl::StatusOr<std::unique_ptr<FreshSchema>> schema =
      FreshSchema::Create(bench.store_url);
  if (!schema.ok()) return schema.status();
  durable->schema = *std::move(schema);
  absl::StatusOr<StartedServer> server = StartServer(
      bench.options, retention_tasks, {"--store", durable->schema->url()}, ttl);
  if (!server.ok()) return server.status();
  durable->server = *std::move(server);
  absl::StatusOr<std::string> metrics =
      durable->server.child->MetricsAddress(absl::Seconds(10));
  if (!metrics.ok()) return metrics.status();
  durable->metrics_address = *std::move(metrics);
  return durable;
}

// The durable rows name their baseline.
std::string DurableMetric(const std::string& metric,
                          const std::string& baseline) {
  return absl::StrCat("durable ", metric, " (vs ", baseline, ")");
}

// The SDK's rows over TLS with a token: named after the plaintext row.
std::string TlsMetric(const std::string& metric) {
  return metric + ", TLS + token (baseline: plaintext)";
}

void RunRtt(Bench& bench) {
  const int64_t samples = bench.options.rtt_samples;
  const int64_t warmup = std::max<int64_t>(10, samples / 20);
  auto measure = [&](const std::function<bool()>& round_trip,
                     std::vector<double>* micros) -> bool {
    for (int64_t i = 0; i < warmup; ++i) {
      if (!round_trip()) return false;
    }
    for (int64_t i = 0; i < samples; ++i) {
      const int64_t start = NowNanos();
      if (!round_trip()) return false;
      micros->push_back((NowNanos() - start) / 1e3);
    }
    return true;
  };

  std::vector<double> echo_us;
  const bool echo_ok = measure(
      [&] {
        grpc::ClientContext context;
        EchoMessage request, response;
        return bench.echo_stub->Unary(&context, request, &response).ok();
      },
      &echo_us);
  if (!echo_ok) return bench.report.Fail("rtt", "the echo baseline failed");

  std::string sdk_error;
  auto measure_sdk = [&](const std::string& address,
                         const ClientOptions& options,
                         std::vector<double>* micros) {
    Client client(address, options);
    return measure(
        [&] {
          absl::StatusOr<TaskResult> result = client.Submit("echo").result();
          if (!result.ok()) sdk_error = result.status().ToString();
          return result.ok();
        },
        micros);
  };
  std::vector<double> sdk_us;
  if (!measure_sdk(bench.address, {}, &sdk_us)) {
    return bench.report.Fail("rtt", "SDK: " + sdk_error);
  }
  // A done-callback's hand-off: submit, register a callback that releases
  // a latch, wait on the latch. The executor runs the callback inline (it
  // only notifies), so the row times the SDK's watcher, not a queue.
  std::vector<double> on_done_us;
  {
    struct InlineExecutor : CallbackExecutor {
      void Run(absl::AnyInvocable<void()> callback) override { callback(); }
    } inline_executor;
    Client client(bench.address);
    const bool on_done_ok = measure(
        [&] {
          absl::Notification latch;
          bool ok = false;
          client.Submit("echo").OnDone(
              [&](const Future& done) {
                ok = done.result().ok();
                latch.Notify();
              },
              inline_executor);
          latch.WaitForNotification();
          return ok;
        },
        &on_done_us);
    if (!on_done_ok) {
      return bench.report.Fail("rtt", "SDK OnDone: the echo did not succeed");
    }
  }
  std::vector<double> tls_us;
  if (!bench.tls_address.empty() &&
      !measure_sdk(bench.tls_address, bench.tls_client, &tls_us)) {
    return bench.report.Fail("rtt", "SDK over TLS: " + sdk_error);
  }

  std::vector<double> unary_us;
  std::string unary_error;
  const bool unary_ok = measure(
      [&] {
        v1::SubmitRequest submit;
        submit.set_function("echo");
        v1::Task task;
        grpc::ClientContext submit_context;
        grpc::Status status =
            bench.stub->Submit(&submit_context, submit, &task);
        v1::AwaitRequest await;
        await.set_id(task.id());
        await.mutable_timeout()->set_seconds(60);
        grpc::ClientContext await_context;
        if (status.ok())
          status = bench.stub->Await(&await_context, await, &task);
        if (!status.ok()) unary_error = status.error_message();
        if (status.ok() && task.state() != v1::SUCCEEDED) {
          unary_error = "task ended " + v1::State_Name(task.state());
        }
        return unary_error.empty();
      },
      &unary_us);
  if (!unary_ok) return bench.report.Fail("rtt", "unary: " + unary_error);

  const double echo_p50 = Percentile(echo_us, 0.5);
  const double echo_p99 = Percentile(echo_us, 0.99);
  Report& r = bench.report;
  const double sdk_p50 = Percentile(sdk_us, 0.5);
  const double sdk_p99 = Percentile(sdk_us, 0.99);
  r.Add("rtt", "SDK submit->result p50", "us", sdk_p50, echo_p50,
        {Target::kRatioAtMost, 1.2});
  r.Add("rtt", "SDK submit->result p99", "us", sdk_p99, echo_p99);
  r.Add("rtt", "SDK submit->OnDone callback p50", "us",
        Percentile(on_done_us, 0.5), echo_p50);
  if (!tls_us.empty()) {
    r.Add("rtt", TlsMetric("SDK submit->result p50"), "us",
          Percentile(tls_us, 0.5), sdk_p50);
    r.Add("rtt", TlsMetric("SDK submit->result p99"), "us",
          Percentile(tls_us, 0.99), sdk_p99);
  }
  r.Add("rtt", "unary Submit+Await p50", "us", Percentile(unary_us, 0.5),
        echo_p50);
  r.Add("rtt", "unary Submit+Await p99", "us", Percentile(unary_us, 0.99),
        echo_p99);
  if (bench.store_url.empty()) return;

  // Durable: the same SDK round trip against a server with --store, on
  // empty tables; then the bare client on empty tables of its own.
  std::vector<double> durable_us;
  absl::StatusOr<CommitCounts> commits_before;
  absl::StatusOr<CommitCounts> commits_after;
  {
    absl::StatusOr<std::unique_ptr<DurableServer>> durable =
        StartDurableServer(bench, 1'000'000);
    if (!durable.ok()) {
      return r.Fail(
          "rtt", "durable server: " + std::string(durable.status().message()));
    }
    commits_before = ScrapeCommits(**durable);
    if (!measure_sdk((*durable)->server.child->address(), {}, &durable_us)) {
      return r.Fail("rtt", "durable SDK: " + sdk_error);
    }
    commits_after = ScrapeCommits(**durable);
  }
  absl::StatusOr<std::unique_ptr<FreshSchema>> schema =
      FreshSchema::Create(bench.store_url);
  if (!schema.ok()) {
    return r.Fail("rtt", std::string(schema.status().message()));
  }
  absl::StatusOr<std::unique_ptr<BarePostgres>> bare =
      BarePostgres::Open((*schema)->url());
  if (!bare.ok()) {
    return r.Fail("rtt",
                  "bare PostgreSQL: " + std::string(bare.status().message()));
  }
  absl::StatusOr<std::vector<double>> insert_us =
      (*bare)->RoundTrips(warmup, samples, /*with_end=*/false);
  absl::StatusOr<std::vector<double>> both_us =
      (*bare)->RoundTrips(warmup, samples, /*with_end=*/true);
  if (!insert_us.ok() || !both_us.ok()) {
    return r.Fail("rtt", "bare PostgreSQL: " +
                             std::string((!insert_us.ok() ? insert_us.status()
                                                          : both_us.status())
                                             .message()));
  }
  const std::string one_commit = "bare PG: 1-row insert/commit";
  const std::string two_commits = "bare PG: insert commit + end commit";
  const double durable_p50 = Percentile(durable_us, 0.5);
  r.Add("rtt", DurableMetric("SDK submit->result p50", one_commit), "us",
        durable_p50, Percentile(*insert_us, 0.5), {Target::kAtMost, 2000});
  r.Add("rtt", DurableMetric("SDK submit->result p99", one_commit), "us",
        Percentile(durable_us, 0.99), Percentile(*insert_us, 0.99));
  r.Add("rtt", DurableMetric("SDK submit->result p50", two_commits), "us",
        durable_p50, Percentile(*both_us, 0.5));
  r.Add("rtt", DurableMetric("SDK submit->result p50", "memory store"), "us",
        durable_p50, sdk_p50);
  AddCommitRows(r, "rtt", "durable SDK rtt",
                static_cast<double>(warmup + samples), commits_before,
                commits_after);
}

// SDK: `client_threads` callers, each keeping its share of the window of
// futures in flight; tasks/s.
// Runs `tasks` tasks of `function` through the SDK, `threads` callers
// sharing a window of `window` futures (each submits with SubmitAsync, the
// SDK's pipelined submit, and settles its oldest future when its share is
// full); the wall time in seconds.
absl::StatusOr<double> RunSdkWindow(const std::string& address,
                                    const ClientOptions& client_options,
                                    const std::string& function,
                                    const google::protobuf::Value& args,
                                    const std::string& pool, int64_t tasks,
                                    int64_t window, int64_t threads) {
  Client client(address, client_options);
  // Connected before the clock starts: the figure is the executor's, not
  // the cost of opening a connection and a stream.
  if (absl::StatusOr<TaskResult> warm = client.Submit("echo").result();
      !warm.ok()) {
    return warm.status();
  }
  threads = std::max<int64_t>(1, std::min(threads, window));
  const SubmitOptions options{.pool = pool};
  std::atomic<int64_t> next{0};
  absl::Mutex mu;
  std::string error;
  auto caller = [&](int64_t share) {
    std::deque<Future> in_flight;
    auto settle_oldest = [&] {
      absl::StatusOr<TaskResult> result = in_flight.front().result();
      in_flight.pop_front();
      if (!result.ok()) {
        absl::MutexLock lock(&mu);
        error = result.status().ToString();
      }
    };
    while (next.fetch_add(1) < tasks) {
      if (static_cast<int64_t>(in_flight.size()) >= share) settle_oldest();
      in_flight.push_back(client.SubmitAsync(function, args, options));
    }
    while (!in_flight.empty()) settle_oldest();
  };
  const int64_t start = NowNanos();
  std::vector<std::thread> callers;
  for (int64_t i = 0; i < threads; ++i) {
    callers.emplace_back(caller, std::max<int64_t>(1, window / threads));
  }
  for (std::thread& t : callers) t.join();
  const double seconds = (NowNanos() - start) / 1e9;
  if (!error.empty()) return absl::InternalError(error);
  return seconds;
}

void RunDurableThroughput(Bench& bench, double memory_tasks_per_s);

// Seconds for Client::Map to run `tasks` echo tasks, `window` in flight.
absl::StatusOr<double> RunMap(const std::string& address, int64_t tasks,
                              int64_t window) {
  Client client(address);
  google::protobuf::Value input;
  input.set_number_value(1);
  const std::vector<google::protobuf::Value> inputs(static_cast<size_t>(tasks),
                                                    input);
  const int64_t start = NowNanos();
  const std::vector<absl::StatusOr<TaskResult>> results =
      client.Map("echo", inputs, static_cast<size_t>(window));
  const double seconds = (NowNanos() - start) / 1e9;
  for (const absl::StatusOr<TaskResult>& result : results) {
    if (!result.ok()) return result.status();
  }
  return seconds;
}

void RunThroughput(Bench& bench) {
  const Options& o = bench.options;
  absl::StatusOr<double> stream_s =
      RunStreamWindow(*bench.echo_stub, o.tasks, o.window);
  absl::StatusOr<double> echo_s =
      RunEchoWindow(*bench.echo_stub, o.tasks, o.window);
  if (!stream_s.ok() || !echo_s.ok()) {
    return bench.report.Fail("throughput", "the echo baseline failed");
  }
  absl::StatusOr<double> sdk_s = RunSdkWindow(
      bench.address, {}, "echo", {}, "", o.tasks, o.window, o.client_threads);
  if (!sdk_s.ok()) {
    return bench.report.Fail("throughput",
                             "SDK: " + std::string(sdk_s.status().message()));
  }
  absl::StatusOr<double> map_s = RunMap(bench.address, o.tasks, o.window);
  if (!map_s.ok()) {
    return bench.report.Fail(
        "throughput", "Client::Map: " + std::string(map_s.status().message()));
  }
  v1::SubmitRequest request;
  request.set_function("echo");
  absl::StatusOr<double> unary_s =
      RunSubmitAwaitWindow(*bench.stub, request, o.tasks, o.window);
  if (!unary_s.ok()) {
    return bench.report.Fail(
        "throughput", "unary: " + std::string(unary_s.status().message()));
  }
  const std::string window = absl::StrCat(" (window ", o.window, ")");
  bench.report.Add("throughput", "SDK no-op tasks" + window, "tasks/s",
                   o.tasks / *sdk_s, o.tasks / *stream_s,
                   {Target::kAtLeast, 150000});
  // Baseline: the SDK row (futures waited for in order by its threads).
  bench.report.Add("throughput", "SDK Client::Map no-op tasks" + window,
                   "tasks/s", o.tasks / *map_s, o.tasks / *sdk_s);
  bench.report.Add("throughput", "unary Submit+Await no-op tasks" + window,
                   "tasks/s", o.tasks / *unary_s, o.tasks / *echo_s);
  if (!bench.store_url.empty()) RunDurableThroughput(bench, o.tasks / *sdk_s);
  if (bench.tls_address.empty()) return;
  absl::StatusOr<double> tls_s =
      RunSdkWindow(bench.tls_address, bench.tls_client, "echo", {}, "", o.tasks,
                   o.window, o.client_threads);
  if (!tls_s.ok()) {
    return bench.report.Fail(
        "throughput", "SDK over TLS: " + std::string(tls_s.status().message()));
  }
  bench.report.Add("throughput", TlsMetric("SDK no-op tasks" + window),
                   "tasks/s", o.tasks / *tls_s, o.tasks / *sdk_s);
}

// Durable throughput with `replicas` servers on one fresh schema, each
// with its own client; the tasks and the window are split evenly among
// them. Seconds from the first submit to the last end.
absl::StatusOr<double> RunReplicasWindow(const Bench& bench, int replicas) {
  const Options& o = bench.options;
  absl::StatusOr<std::unique_ptr<FreshSchema>> schema =
      FreshSchema::Create(bench.store_url);
  if (!schema.ok()) return schema.status();
  std::vector<StartedServer> servers;
  for (int i = 0; i < replicas; ++i) {
    absl::StatusOr<StartedServer> server =
        StartServer(o, std::max<int64_t>(1'000'000, 2 * o.tasks),
                    {"--store", (*schema)->url(), "--replica-name",
                     absl::StrCat("bench-", i + 1)});
    if (!server.ok()) return server.status();
    servers.push_back(*std::move(server));
  }
  // Every replica sees the others (heartbeats every 2 s by default), so
  // that work beyond one's room is left to the others.
  absl::SleepFor(absl::Milliseconds(2500));
  std::vector<absl::StatusOr<double>> seconds(static_cast<size_t>(replicas),
                                              absl::UnknownError("not run"));
  const int64_t start = NowNanos();
  std::vector<std::thread> clients;
  for (int i = 0; i < replicas; ++i) {
    clients.emplace_back([&, i] {
      seconds[static_cast<size_t>(i)] = RunSdkWindow(
          servers[static_cast<size_t>(i)].child->address(), {}, "echo", {}, "",
          o.tasks / replicas, std::max<int64_t>(1, o.window / replicas),
          std::max<int64_t>(1, o.client_threads / replicas));
    });
  }
  for (std::thread& client : clients) client.join();
  const double wall = (NowNanos() - start) / 1e9;
  for (const absl::StatusOr<double>& one : seconds) {
    if (!one.ok()) return one.status();
  }
  servers.clear();  // stopped before the schema is dropped
  return wall;
}

// The durable rows of throughput: the SDK row against a server with
// --store, and the bare client's batches at the same window.
void RunDurableThroughput(Bench& bench, double memory_tasks_per_s) {
  const Options& o = bench.options;
  Report& r = bench.report;
  absl::StatusOr<double> durable_s;
  absl::StatusOr<CommitCounts> commits_before;
  absl::StatusOr<CommitCounts> commits_after;
  {
    absl::StatusOr<std::unique_ptr<DurableServer>> durable =
        StartDurableServer(bench, std::max<int64_t>(1'000'000, 2 * o.tasks));
    if (!durable.ok()) {
      return r.Fail("throughput", "durable server: " +
                                      std::string(durable.status().message()));
    }
    commits_before = ScrapeCommits(**durable);
    durable_s = RunSdkWindow((*durable)->server.child->address(), {}, "echo",
                             {}, "", o.tasks, o.window, o.client_threads);
    commits_after = ScrapeCommits(**durable);
  }
  if (!durable_s.ok()) {
    return r.Fail("throughput",
                  "durable SDK: " + std::string(durable_s.status().message()));
  }
  absl::StatusOr<double> batches_s;
  absl::StatusOr<double> inserts_s;
  absl::StatusOr<double> pipelined_s;
  for (bool inserts_only : {false, true}) {
    absl::StatusOr<std::unique_ptr<FreshSchema>> schema =
        FreshSchema::Create(bench.store_url);
    if (!schema.ok()) {
      return r.Fail("throughput", std::string(schema.status().message()));
    }
    absl::StatusOr<std::unique_ptr<BarePostgres>> bare =
        BarePostgres::Open((*schema)->url());
    if (!bare.ok()) {
      return r.Fail("throughput",
                    "bare PostgreSQL: " + std::string(bare.status().message()));
    }
    (inserts_only ? inserts_s : batches_s) =
        (*bare)->Throughput(o.tasks, o.window, inserts_only);
    if (inserts_only && inserts_s.ok()) {
      pipelined_s =
          (*bare)->PipelinedInserts(o.tasks, std::min<int64_t>(o.window, 1024));
    }
  }
  if (!batches_s.ok() || !inserts_s.ok()) {
    return r.Fail(
        "throughput",
        "bare PostgreSQL: " + std::string((!batches_s.ok() ? batches_s.status()
                                                           : inserts_s.status())
                                              .message()));
  }
  const std::string metric =
      absl::StrCat("SDK no-op tasks (window ", o.window, ")");
  const double durable = o.tasks / *durable_s;
  r.Add("throughput", DurableMetric(metric, "bare PG: the store's batches"),
        "tasks/s", durable, o.tasks / *batches_s, {Target::kAtLeast, 20000});
  r.Add("throughput",
        DurableMetric(metric, absl::StrCat("bare PG: inserts only, ",
                                           std::min<int64_t>(o.window, 1024),
                                           " per commit")),
        "tasks/s", durable, o.tasks / *inserts_s);
  r.Add("throughput", DurableMetric(metric, "memory store"), "tasks/s", durable,
        memory_tasks_per_s);
  // Why the store batches with multi-row statements: the same inserts,
  // pipelined one statement per row, in the same run.
  if (pipelined_s.ok()) {
    r.Add("throughput",
          absl::StrCat("bare PG inserts, ", std::min<int64_t>(o.window, 1024),
                       " per commit: one multi-row statement (baseline: one "
                       "statement per row, pipelined)"),
          "tasks/s", o.tasks / *inserts_s, o.tasks / *pipelined_s);
  } else {
    r.Fail("throughput", "bare PostgreSQL pipeline: " +
                             std::string(pipelined_s.status().message()));
  }
  // Replicas on one database: the same tasks and window, split among 2
  // and 3 servers, next to the one server above.
  for (int replicas : {2, 3}) {
    absl::StatusOr<double> seconds = RunReplicasWindow(bench, replicas);
    if (!seconds.ok()) {
      r.Fail("throughput",
             absl::StrCat(replicas, " replicas: ", seconds.status().message()));
      continue;
    }
    r.Add("throughput",
          DurableMetric(
              absl::StrCat(metric, ", ", replicas, " replicas on one database"),
              "1 replica"),
          "tasks/s", o.tasks / *seconds, durable, {Target::kRatioAtLeast, 0.8});
  }
  // RunSdkWindow's warm-up task included.
  AddCommitRows(r, "throughput", "durable SDK throughput",
                static_cast<double>(o.tasks + 1), commits_before,
                commits_after);
}

const v1::PoolInfo* FindPool(const Bench& bench, const std::string& name) {
  for (const v1::PoolInfo& pool : bench.pools) {
    if (pool.name() == name) return &pool;
  }
  return nullptr;
}

// `tasks` × `function` {"ms": ms} on `pool`, at most `window` in flight from
// one caller; reports the wall time against the ideal for the pool's workers
// (or the window, if smaller). `bound` 0 reports without a target.
void RunTimedBatch(Bench& bench, const std::string& scenario,
                   const std::string& metric, const v1::PoolInfo& pool,
                   const std::string& function, int64_t tasks, int64_t ms,
                   int64_t window, double bound) {
  const int64_t lanes =
      std::max<int64_t>(1, std::min<int64_t>(window, pool.workers()));
  const double ideal_ms = static_cast<double>((tasks + lanes - 1) / lanes) *
                          static_cast<double>(ms);
  absl::StatusOr<double> wall =
      RunSdkWindow(bench.address, {}, function, MsArgs(ms), pool.name(), tasks,
                   window, /*threads=*/1);
  if (!wall.ok()) {
    return bench.report.Fail(scenario, std::string(wall.status().message()));
  }
  const std::string in_flight =
      window >= tasks ? "all submitted" : absl::StrCat(window, " in flight");
  bench.report.Add(
      scenario,
      absl::StrFormat("%s: %d x %s %dms, %d lanes, %s, wall vs ideal", metric,
                      tasks, function, ms, lanes, in_flight),
      "ms", *wall * 1e3, ideal_ms,
      bound > 0 ? Target{Target::kRatioAtMost, bound} : Target{});
}

// The pool named `preferred` if the server has it, else "default".
const v1::PoolInfo* PoolOrDefault(const Bench& bench,
                                  const std::string& preferred) {
  const v1::PoolInfo* pool = FindPool(bench, preferred);
  return pool != nullptr ? pool : FindPool(bench, "default");
}

void RunCpu(Bench& bench) {
  const Options& o = bench.options;
  const v1::PoolInfo* pool = PoolOrDefault(bench, "cpu");
  if (pool == nullptr)
    return bench.report.Fail("cpu", "no pool 'cpu' or 'default'");
  RunTimedBatch(bench, "cpu", "thread pool '" + pool->name() + "'", *pool,
                "spin", o.cpu_tasks, o.cpu_ms, o.cpu_tasks, 1.05);
  for (const v1::PoolInfo& process : bench.pools) {
    if (process.kind() != "process") continue;
    RunTimedBatch(bench, "cpu", "process pool '" + process.name() + "'",
                  process, "spin", o.cpu_tasks, o.cpu_ms, o.cpu_tasks, 1.05);
    break;
  }
}

void RunSleep(Bench& bench) {
  const Options& o = bench.options;
  const v1::PoolInfo* pool = PoolOrDefault(bench, "io");
  if (pool == nullptr)
    return bench.report.Fail("sleep", "no pool 'io' or 'default'");
  const std::string metric = "pool '" + pool->name() + "'";
  // As a caller of concurrent.futures would: every task submitted at once,
  // the pool's workers set the parallelism.
  RunTimedBatch(bench, "sleep", metric, *pool, "sleep", o.sleep_tasks,
                o.sleep_ms, o.sleep_tasks, 1.1);
  // Paced by the client: a task is submitted only when one ends, so each
  // lane also pays a round trip per task (no target; see BENCHMARKS.md).
  RunTimedBatch(bench, "sleep", metric, *pool, "sleep", o.sleep_tasks,
                o.sleep_ms, o.parallelism, 0);
}

// One parked Await; records the state it answered with.
class AwaitOne final : public ClientQueue::Op {
 public:
  AwaitOne(v1::Executor::Stub& stub, grpc::CompletionQueue* cq,
           const std::string& id, RunState* run)
      : run_(run) {
    v1::AwaitRequest request;
    request.set_id(id);
    request.mutable_timeout()->set_seconds(300);
    call_ = stub.AsyncAwait(&context_, request, cq);
    call_->Finish(&task_, &status_, this);
  }
  void Done(bool ok) override {
    if (!ok || !status_.ok()) {
      run_->Error("Await: " + status_.error_message());
    } else if (task_.state() != v1::CANCELLED) {
      run_->Error("Await answered " + v1::State_Name(task_.state()));
    } else {
      run_->Complete();
    }
    delete this;
  }

 private:
  RunState* const run_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::Task>> call_;
  v1::Task task_;
  grpc::Status status_;
};

absl::StatusOr<ProcessUsage> ServerUsage(const Bench& bench) {
  if (bench.server_pid == 0) {
    return absl::FailedPreconditionError(
        "the server's pid is unknown (pass --server-pid with --target)");
  }
  return ReadProcessUsage(bench.server_pid);
}

// Waits until the server's RSS and thread count stop changing for a while
// (at most `limit`); the last reading.
absl::StatusOr<ProcessUsage> SettledUsage(const Bench& bench,
                                          absl::Duration limit) {
  absl::StatusOr<ProcessUsage> last = ServerUsage(bench);
  const absl::Time deadline = absl::Now() + limit;
  int stable = 0;
  while (last.ok() && stable < 5 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    absl::StatusOr<ProcessUsage> now = ServerUsage(bench);
    if (!now.ok()) return now;
    const bool same = now->threads == last->threads &&
                      std::llabs(now->rss_bytes - last->rss_bytes) < (64 << 10);
    stable = same ? stable + 1 : 0;
    last = now;
  }
  return last;
}

void RunAwaiters(Bench& bench) {
  const Options& o = bench.options;
  absl::StatusOr<ProcessUsage> before = SettledUsage(bench, absl::Seconds(2));
  if (!before.ok()) {
    return bench.report.Fail("awaiters",
                             std::string(before.status().message()));
  }
  // One long sleep that every Await parks on; cancelled at the end.
  v1::SubmitRequest submit;
  submit.set_function("sleep");
  *submit.mutable_args() = MsArgs(600000);
  v1::Task task;
  grpc::ClientContext submit_context;
  if (grpc::Status s = bench.stub->Submit(&submit_context, submit, &task);
      !s.ok()) {
    return bench.report.Fail("awaiters", "Submit: " + s.error_message());
  }
  RunState run(o.awaiters);
  ClientQueue queue;  // destroyed (drained) before `run`
  for (int64_t i = 0; i < o.awaiters; ++i) {
    new AwaitOne(*bench.stub, queue.cq(), task.id(), &run);
  }
  // A Get on the same connection, sent after every Await: once it is
  // answered the server has read them all; then wait for the server to
  // settle, sampling the peak.
  {
    v1::GetRequest get;
    get.set_id(task.id());
    v1::Task now;
    grpc::ClientContext context;
    (void)bench.stub->Get(&context, get, &now);
  }
  absl::StatusOr<ProcessUsage> during = SettledUsage(bench, absl::Seconds(5));
  v1::CancelRequest cancel;
  cancel.set_id(task.id());
  v1::Task cancelled;
  grpc::ClientContext cancel_context;
  const grpc::Status cancel_status =
      bench.stub->Cancel(&cancel_context, cancel, &cancelled);
  const absl::Status awaited = run.Wait(absl::Seconds(60));
  absl::StatusOr<ProcessUsage> after = SettledUsage(bench, absl::Seconds(5));
  if (!cancel_status.ok()) {
    return bench.report.Fail("awaiters",
                             "Cancel: " + cancel_status.error_message());
  }
  if (!awaited.ok()) {
    return bench.report.Fail("awaiters", std::string(awaited.message()));
  }
  if (!during.ok() || !after.ok()) {
    return bench.report.Fail("awaiters", "cannot read the server's usage");
  }
  Report& r = bench.report;
  const std::string n = absl::StrCat(o.awaiters);
  r.Add("awaiters", "server threads added by " + n + " parked Awaits",
        "threads", during->threads - before->threads, std::nullopt,
        {Target::kAtMost, 0});
  r.Add("awaiters", "server threads before", "threads", before->threads);
  r.Add("awaiters", "server threads during", "threads", during->threads);
  r.Add("awaiters", "server threads after", "threads", after->threads);
  r.Add("awaiters", "server RSS before", "MiB", before->rss_bytes / 1048576.0);
  r.Add("awaiters", "server RSS during", "MiB", during->rss_bytes / 1048576.0);
  r.Add("awaiters", "server RSS after", "MiB", after->rss_bytes / 1048576.0);
  r.Add("awaiters", "server RSS per parked Await", "bytes",
        static_cast<double>(during->rss_bytes - before->rss_bytes) /
            static_cast<double>(o.awaiters));
}

void RunRetention(Bench& bench) {
  const Options& o = bench.options;
  if (!bench.options.target.empty()) {
    return bench.report.Fail(
        "retention", "needs a server of its own (not run with --target)");
  }
  absl::StatusOr<StartedServer> server = StartServer(o, o.retention_tasks * 2);
  if (!server.ok()) {
    return bench.report.Fail("retention",
                             std::string(server.status().message()));
  }
  Bench local;
  local.server_pid = server->child->pid();
  auto stub = v1::Executor::NewStub(NewChannel(server->child->address()));
  v1::SubmitRequest request;
  request.set_function("echo");
  // Warm the server's threads and malloc arenas up to the peak of a full
  // window of calls in flight before the first reading, so that the
  // difference is what retained tasks hold, not transient call buffers.
  if (absl::StatusOr<double> warm = RunSubmitAwaitWindow(
          *stub, request, std::max<int64_t>(1000, 10 * o.window), o.window);
      !warm.ok()) {
    return bench.report.Fail("retention", std::string(warm.status().message()));
  }
  absl::StatusOr<ProcessUsage> before = SettledUsage(local, absl::Seconds(2));
  absl::StatusOr<double> wall =
      RunSubmitAwaitWindow(*stub, request, o.retention_tasks, o.window);
  if (!wall.ok()) {
    return bench.report.Fail("retention", std::string(wall.status().message()));
  }
  absl::StatusOr<ProcessUsage> after = SettledUsage(local, absl::Seconds(5));
  if (!before.ok() || !after.ok()) {
    return bench.report.Fail("retention", "cannot read the server's usage");
  }
  const double per_task =
      static_cast<double>(after->rss_bytes - before->rss_bytes) /
      static_cast<double>(o.retention_tasks);
  Report& r = bench.report;
  r.Add("retention",
        absl::StrCat("server RSS per retained no-op task, ", o.retention_tasks,
                     " tasks"),
        "bytes", per_task, std::nullopt, {Target::kAtMost, 512});
  r.Add("retention", "server RSS before", "MiB", before->rss_bytes / 1048576.0);
  r.Add("retention", "server RSS after", "MiB", after->rss_bytes / 1048576.0);
}

// One sample of the steady scenario.
struct SteadySample {
  double t_s = 0;
  int64_t submitted = 0;
  int64_t ended = 0;
  std::vector<TableStats> tables;
};

std::vector<std::string> SteadyTable(const std::vector<SteadySample>& samples) {
  std::vector<std::vector<std::string>> cells;
  std::vector<std::string> header = {"t (s)", "submitted", "ended"};
  for (const char* table : {"tasks", "inputs", "results"}) {
    for (const char* column : {" MiB", " live", " dead", " autovacuums"}) {
      header.push_back(absl::StrCat(table, column));
    }
  }
  header.push_back("total MiB");
  cells.push_back(header);
  for (const SteadySample& sample : samples) {
    std::vector<std::string> line = {absl::StrFormat("%.0f", sample.t_s),
                                     absl::StrCat(sample.submitted),
                                     absl::StrCat(sample.ended)};
    int64_t total = 0;
    for (const TableStats& table : sample.tables) {
      total += table.total_bytes;
      line.push_back(absl::StrFormat("%.1f", table.total_bytes / 1048576.0));
      line.push_back(absl::StrCat(table.live_tuples));
      line.push_back(absl::StrCat(table.dead_tuples));
      line.push_back(table.last_autovacuum_age_s < 0
                         ? absl::StrCat(table.autovacuums)
                         : absl::StrFormat("%d (%.0fs ago)", table.autovacuums,
                                           table.last_autovacuum_age_s));
    }
    line.push_back(absl::StrFormat("%.1f", total / 1048576.0));
    cells.push_back(line);
  }
  std::vector<size_t> widths(header.size(), 0);
  for (const auto& line : cells) {
    for (size_t i = 0; i < line.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], line[i].size());
    }
  }
  std::vector<std::string> text;
  for (size_t row = 0; row < cells.size(); ++row) {
    std::string out = "|";
    for (size_t i = 0; i < cells[row].size(); ++i) {
      out +=
          absl::StrCat(" ", std::string(widths[i] - cells[row][i].size(), ' '),
                       cells[row][i], " |");
    }
    text.push_back(out);
    if (row == 0) {
      std::string rule = "|";
      for (size_t width : widths) rule += std::string(width + 1, '-') + ":|";
      text.push_back(rule);
    }
  }
  return text;
}

int64_t TotalBytes(const SteadySample& sample) {
  int64_t total = 0;
  for (const TableStats& table : sample.tables) total += table.total_bytes;
  return total;
}

// A durable server with a short ttl under a constant submit rate: whether
// its tables stay bounded. Samples the remex tables every steady_sample
// seconds (see BENCHMARKS.md, "Durable store").
void RunSteady(Bench& bench) {
  const Options& o = bench.options;
  Report& r = bench.report;
  absl::StatusOr<std::unique_ptr<DurableServer>> durable = StartDurableServer(
      bench, std::max<int64_t>(1'000'000, o.steady_rate * o.steady_ttl * 4),
      absl::StrCat(o.steady_ttl, "s"));
  if (!durable.ok()) {
    return r.Fail("steady",
                  "durable server: " + std::string(durable.status().message()));
  }
  absl::StatusOr<std::unique_ptr<TableSampler>> sampler =
      TableSampler::Open((*durable)->schema->url(), (*durable)->schema->name());
  if (!sampler.ok()) {
    return r.Fail("steady", std::string(sampler.status().message()));
  }
  Client client((*durable)->server.child->address());
  if (absl::StatusOr<TaskResult> warm = client.Submit("echo").result();
      !warm.ok()) {
    return r.Fail("steady", "SDK: " + warm.status().ToString());
  }
  // The submitter paces SubmitAsync at the rate; the settler waits for
  // each future in submission order (no-op tasks end about in order). At
  // most `cap` in flight: past it the submitter waits, and the rate is not
  // met (the table shows it).
  const int64_t cap = std::max<int64_t>(1000, o.steady_rate * 2);
  absl::Mutex mu;
  std::deque<Future> in_flight;
  bool submitting = true;
  std::string error;
  std::atomic<int64_t> submitted{0};
  std::atomic<int64_t> ended{0};
  const absl::Time start = absl::Now();
  const absl::Time end = start + absl::Seconds(o.steady_seconds);
  std::thread submitter([&] {
    while (absl::Now() < end) {
      const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
      const auto due = static_cast<int64_t>(elapsed * o.steady_rate);
      while (submitted.load() < due && absl::Now() < end) {
        Future future = client.SubmitAsync("echo");
        absl::MutexLock lock(&mu);
        auto room = [&] {
          return static_cast<int64_t>(in_flight.size()) < cap;
        };
        mu.Await(absl::Condition(&room));
        in_flight.push_back(std::move(future));
        submitted.fetch_add(1);
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    absl::MutexLock lock(&mu);
    submitting = false;
  });
  std::thread settler([&] {
    for (;;) {
      Future future;
      {
        absl::MutexLock lock(&mu);
        auto ready = [&] { return !in_flight.empty() || !submitting; };
        mu.Await(absl::Condition(&ready));
        if (in_flight.empty()) return;
        future = std::move(in_flight.front());
        in_flight.pop_front();
      }
      absl::StatusOr<TaskResult> result = future.result();
      if (!result.ok()) {
        absl::MutexLock lock(&mu);
        if (error.empty()) error = result.status().ToString();
      }
      ended.fetch_add(1);
    }
  });
  std::vector<SteadySample> samples;
  std::string sample_error;
  for (int64_t at = 0;; at += o.steady_sample) {
    const absl::Time when = start + absl::Seconds(at);
    if (when > end) break;
    absl::SleepFor(when - absl::Now());
    absl::StatusOr<std::vector<TableStats>> tables = (*sampler)->Sample();
    if (!tables.ok()) {
      sample_error = std::string(tables.status().message());
      break;
    }
    samples.push_back({static_cast<double>(at), submitted.load(), ended.load(),
                       *std::move(tables)});
    std::fprintf(stderr,
                 "remex-bench: steady t=%.0fs submitted %lld ended %lld, "
                 "tables %.1f MiB\n",
                 samples.back().t_s,
                 static_cast<long long>(samples.back().submitted),
                 static_cast<long long>(samples.back().ended),
                 TotalBytes(samples.back()) / 1048576.0);
  }
  submitter.join();
  settler.join();
  if (!sample_error.empty()) return r.Fail("steady", sample_error);
  if (!error.empty()) return r.Fail("steady", "SDK: " + error);
  bench.steady_table = SteadyTable(samples);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  r.Add("steady",
        absl::StrCat("no-op tasks submitted (asked: ", o.steady_rate,
                     "/s, ttl ", o.steady_ttl, "s)"),
        "tasks/s", submitted.load() / seconds);
  // Bounded: the size at the end against the size once the first tasks
  // could have expired and been deleted (two ttls in), or the first sample.
  if (samples.size() >= 2) {
    const SteadySample* reference = &samples.front();
    for (const SteadySample& sample : samples) {
      if (sample.t_s >= 2.0 * static_cast<double>(o.steady_ttl)) {
        reference = &sample;
        break;
      }
    }
    r.Add("steady",
          absl::StrFormat("remex tables' total size at %.0fs (baseline: at "
                          "%.0fs)",
                          samples.back().t_s, reference->t_s),
          "MiB", TotalBytes(samples.back()) / 1048576.0,
          TotalBytes(*reference) / 1048576.0);
    int64_t dead = 0;
    for (const TableStats& table : samples.back().tables) {
      dead += table.dead_tuples;
    }
    r.Add("steady", absl::StrFormat("dead tuples at %.0fs", samples.back().t_s),
          "tuples", static_cast<double>(dead));
  }
}

// A CA and a server certificate for 127.0.0.1 (EC P-256, one day) made with
// the `openssl` tool in a temp dir of their own, removed by the destructor.
class BenchCerts {
 public:
  static absl::StatusOr<std::unique_ptr<BenchCerts>> Make() {
    char dir[] = "/tmp/remex-bench-tls-XXXXXX";
    if (mkdtemp(dir) == nullptr) {
      return absl::InternalError("cannot make a temp dir for certificates");
    }
    auto certs = std::unique_ptr<BenchCerts>(new BenchCerts(dir));
    const std::string d = certs->dir_;
    std::ofstream(d + "/server.ext")
        << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    const std::vector<std::string> commands = {
        absl::StrCat("openssl req -x509 -newkey ec -pkeyopt "
                     "ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "
                     "/CN=remex-bench-CA -keyout ",
                     d, "/ca.key -out ", d, "/ca.pem"),
        absl::StrCat("openssl req -new -newkey ec -pkeyopt "
                     "ec_paramgen_curve:prime256v1 -nodes -subj "
                     "/CN=remex-bench -keyout ",
                     d, "/server.key -out ", d, "/server.csr"),
        absl::StrCat("openssl x509 -req -days 1 -in ", d, "/server.csr -CA ", d,
                     "/ca.pem -CAkey ", d, "/ca.key -CAcreateserial -CAserial ",
                     d, "/ca.srl -extfile ", d, "/server.ext -out ", d,
                     "/server.pem")};
    for (const std::string& command : commands) {
      if (std::system((command + " >/dev/null 2>&1").c_str()) != 0) {
        return absl::InternalError(absl::StrCat(
            "making certificates failed (is openssl installed?): ", command));
      }
    }
    std::ifstream ca(d + "/ca.pem");
    certs->ca_pem_.assign(std::istreambuf_iterator<char>(ca), {});
    // The server checks the token (--auth), as a secured server does.
    std::ofstream(d + "/auth.yaml")
        << "principals:\n  - name: bench\n    token_sha256: "
        << auth::TokenSha256Hex(kToken) << "\n";
    return certs;
  }
  ~BenchCerts() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string cert() const { return dir_ + "/server.pem"; }
  std::string key() const { return dir_ + "/server.key"; }
  std::string auth_file() const { return dir_ + "/auth.yaml"; }
  static constexpr char kToken[] = "remex-bench-token";
  const std::string& ca_pem() const { return ca_pem_; }

 private:
  explicit BenchCerts(std::string dir) : dir_(std::move(dir)) {}
  const std::string dir_;
  std::string ca_pem_;
};

// The steady table (markdown lines) goes in as text: it is for reading.
void WriteJson(const Options& options, const Report& report,
               const std::vector<std::string>& steady_table) {
  nlohmann::json rows = nlohmann::json::array();
  for (const Row& row : report.rows()) {
    const double remex = Median(row.remex);
    const double baseline = Median(row.baseline);
    const double ratio = row.baseline.empty() ? std::nan("") : remex / baseline;
    auto number = [](double v) {
      return std::isnan(v) ? nlohmann::json() : nlohmann::json(v);
    };
    rows.push_back({{"scenario", row.scenario},
                    {"metric", row.metric},
                    {"unit", row.unit},
                    {"remex", number(remex)},
                    {"baseline", number(baseline)},
                    {"ratio", number(ratio)},
                    {"target", FormatTarget(row.target)},
                    {"result", Verdict(row.target, remex, ratio)},
                    {"remex_runs", row.remex},
                    {"baseline_runs", row.baseline}});
  }
  nlohmann::json out = {{"machine", MachineLine()},
                        {"repeat", options.repeat},
                        {"rows", rows},
                        {"errors", report.errors()}};
  if (!steady_table.empty()) out["steady_table"] = steady_table;
  std::ofstream(options.json_path) << out.dump(2) << "\n";
}

// The baseline's process: serves Echo on 127.0.0.1 until SIGTERM.
int ServeEcho() {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before any thread starts
  absl::StatusOr<std::unique_ptr<EchoServer>> echo =
      EchoServer::Start(static_cast<int>(std::thread::hardware_concurrency()));
  if (!echo.ok()) {
    std::fprintf(stderr, "remex-bench: %s\n",
                 std::string(echo.status().message()).c_str());
    return 1;
  }
  std::printf("listening on %s\n", (*echo)->address().c_str());
  std::fflush(stdout);
  int signal = 0;
  sigwait(&stop, &signal);
  return 0;
}

int Main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == kServeEcho) return ServeEcho();
  }
  absl::StatusOr<Options> parsed = ParseFlags(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "remex-bench: %s (see --help)\n",
                 std::string(parsed.status().message()).c_str());
    return 2;
  }
  Bench bench;
  bench.options = *std::move(parsed);
  const Options& o = bench.options;
  // --store postgres: a PostgreSQL of our own, started (initdb takes
  // seconds) before any other child.
#ifdef REMEX_BENCH_POSTGRES_FIXTURE
  std::unique_ptr<testing::PostgresServer> postgres;
#endif
  if (o.store == "postgres") {
#ifdef REMEX_BENCH_POSTGRES_FIXTURE
    absl::StatusOr<std::unique_ptr<testing::PostgresServer>> started =
        testing::PostgresServer::Start();
    if (!started.ok()) {
      std::fprintf(stderr, "remex-bench: --store postgres: %s\n",
                   std::string(started.status().message()).c_str());
      return 1;
    }
    postgres = *std::move(started);
    bench.store_url = postgres->url();
#else
    std::fprintf(stderr,
                 "remex-bench: --store postgres needs a build with the tests "
                 "(REMEX_BUILD_TESTS); give a URL instead\n");
    return 2;
#endif
  } else {
    bench.store_url = o.store;
  }
  std::string database;
  if (!bench.store_url.empty()) {
    absl::StatusOr<std::string> described = DescribeDatabase(bench.store_url);
    if (!described.ok()) {
      std::fprintf(stderr, "remex-bench: --store: %s\n",
                   std::string(described.status().message()).c_str());
      return 1;
    }
    database = *std::move(described);
  }
  // Made before any thread starts (std::system runs a shell).
  std::unique_ptr<BenchCerts> certs;
  if (o.tls) {
    absl::StatusOr<std::unique_ptr<BenchCerts>> made = BenchCerts::Make();
    if (!made.ok()) {
      std::fprintf(stderr, "remex-bench: %s\n",
                   std::string(made.status().message()).c_str());
      return 1;
    }
    certs = *std::move(made);
  }

  // The baseline runs in a process of its own, as remex-server does, so
  // that neither server's threads poll in the client's process.
  const int pollers = static_cast<int>(std::thread::hardware_concurrency());
  absl::StatusOr<std::unique_ptr<ServerChild>> echo =
      ServerChild::Start("/proc/self/exe", {kServeEcho});
  if (!echo.ok()) {
    std::fprintf(stderr, "remex-bench: %s\n",
                 std::string(echo.status().message()).c_str());
    return 1;
  }
  bench.echo = *std::move(echo);
  bench.echo_stub = Echo::NewStub(NewChannel(bench.echo->address()));

  StartedServer server;
  if (o.target.empty()) {
    absl::StatusOr<StartedServer> started = StartServer(o, 1'000'000);
    if (!started.ok()) {
      std::fprintf(stderr, "remex-bench: %s\n",
                   std::string(started.status().message()).c_str());
      return 1;
    }
    server = *std::move(started);
    bench.address = server.child->address();
    bench.server_pid = server.child->pid();
  } else {
    bench.address = o.target;
    bench.server_pid = o.server_pid;
  }
  // The same server with TLS, for the SDK rows over TLS.
  StartedServer tls_server;
  if (certs != nullptr) {
    absl::StatusOr<StartedServer> started =
        StartServer(o, 1'000'000,
                    {"--tls-cert", certs->cert(), "--tls-key", certs->key(),
                     "--auth", certs->auth_file()});
    if (!started.ok()) {
      std::fprintf(stderr, "remex-bench: TLS server: %s\n",
                   std::string(started.status().message()).c_str());
      return 1;
    }
    tls_server = *std::move(started);
    bench.tls_address = tls_server.child->address();
    bench.tls_client.tls_root_certs = certs->ca_pem();
    bench.tls_client.token = BenchCerts::kToken;
  }
  bench.stub = v1::Executor::NewStub(NewChannel(bench.address));
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    v1::ListFunctionsResponse functions;
    const grpc::Status status = bench.stub->ListFunctions(
        &context, v1::ListFunctionsRequest(), &functions);
    if (!status.ok()) {
      std::fprintf(stderr, "remex-bench: ListFunctions on %s: %s\n",
                   bench.address.c_str(), status.error_message().c_str());
      return 1;
    }
    bench.pools.assign(functions.pools().begin(), functions.pools().end());
  }

  std::printf("remex-bench: %s\n", MachineLine().c_str());
  std::vector<std::string> pools;
  for (const v1::PoolInfo& pool : bench.pools) {
    pools.push_back(
        absl::StrCat(pool.name(), "(", pool.kind(), " x", pool.workers(), ")"));
  }
  std::printf(
      "remex-server %s%s, pools %s; baseline: echo on %s, %d pollers; "
      "%d run(s), medians\n",
      bench.address.c_str(), o.target.empty() ? " (child)" : "",
      absl::StrJoin(pools, " ").c_str(), bench.echo->address().c_str(), pollers,
      o.repeat);
  if (!bench.tls_address.empty()) {
    std::printf(
        "remex-server with TLS and --auth %s (child), SDK with a bearer "
        "token\n",
        bench.tls_address.c_str());
  }
  if (!database.empty()) {
    std::printf(
        "durable rows: remex-server --store on a fresh schema per run "
        "of %s (%s%s)\n",
        store::internal::RedactUrl(bench.store_url).c_str(), database.c_str(),
        o.store == "postgres" ? ", started here" : "");
  }
  std::fflush(stdout);

  const std::map<std::string, std::function<void(Bench&)>> scenarios = {
      {"rtt", RunRtt},           {"throughput", RunThroughput},
      {"cpu", RunCpu},           {"sleep", RunSleep},
      {"awaiters", RunAwaiters}, {"retention", RunRetention},
      {"steady", RunSteady}};
  for (const std::string& name : o.scenarios) {
    // One retention run and one steady run: the slowest by far.
    const int runs = name == "retention" || name == "steady" ? 1 : o.repeat;
    for (int run = 0; run < runs; ++run) {
      const size_t errors = bench.report.errors().size();
      const int64_t start = NowNanos();
      scenarios.at(name)(bench);
      std::fprintf(stderr, "remex-bench: %s run %d/%d: %.1f s%s\n",
                   name.c_str(), run + 1, runs, (NowNanos() - start) / 1e9,
                   bench.report.errors().size() > errors ? " (error)" : "");
      if (bench.report.errors().size() > errors) break;
    }
  }

  std::printf("\n");
  PrintTable(bench.report);
  for (const std::string& error : bench.report.errors()) {
    std::printf("error: %s\n", error.c_str());
  }
  if (!bench.steady_table.empty()) {
    std::printf(
        "\nsteady: %lld no-op tasks/s for %llds, ttl %llds: the remex tables "
        "(pg_total_relation_size, pg_stat_user_tables)\n\n",
        static_cast<long long>(o.steady_rate),
        static_cast<long long>(o.steady_seconds),
        static_cast<long long>(o.steady_ttl));
    for (const std::string& line : bench.steady_table) {
      std::printf("%s\n", line.c_str());
    }
  }
  if (!o.json_path.empty()) WriteJson(o, bench.report, bench.steady_table);
  return bench.report.errors().empty() ? 0 : 1;
}

}  // namespace
}  // namespace remex::bench

int main(int argc, char** argv) { return remex::bench::Main(argc, argv); }
