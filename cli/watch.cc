#include "cli/watch.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "remex/future.h"

namespace remex::cli {
namespace {

struct TerminalSize {
  size_t columns = 80;
  size_t rows = 24;
};

TerminalSize GetTerminalSize() {
  TerminalSize size;
  winsize window{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &window) == 0 && window.ws_col > 0) {
    size.columns = window.ws_col;
    size.rows = std::max<size_t>(window.ws_row, 5);
  }
  return size;
}

// Whether `a` and `b` differ in what a watcher reports.
bool Changed(const v1::Task& a, const v1::Task& b) {
  return a.state() != b.state() || a.attempt() != b.attempt() ||
         a.cancel_requested() != b.cancel_requested();
}

// The tasks followed, in the order first seen, and what has been shown of
// them. Used by one thread.
class Watcher {
 public:
  Watcher(Client& client, const WatchCommand& command, WatchDisplay display)
      : client_(client),
        command_(command),
        display_(display),
        deadline_(absl::Now() + command.timeout) {}

  int Run() {
    if (!command_.ids.empty()) {
      for (const std::string& id : command_.ids) {
        if (!Fetch(id)) return Finish();
      }
    }
    for (;;) {
      if (command_.ids.empty() && !ListFilters()) return Finish();
      Show();
      if (!command_.ids.empty() && Pending().empty()) return Finish();
      const absl::Duration remaining = deadline_ - absl::Now();
      if (remaining <= absl::ZeroDuration()) return Finish();
      if (!Wait(std::min(command_.interval, remaining))) return Finish();
    }
  }

 private:
  // Ids of the tasks not ended, in order.
  std::vector<std::string> Pending() const {
    std::vector<std::string> pending;
    for (const v1::Task& task : tasks_) {
      if (!IsTerminal(task.state())) pending.push_back(task.id());
    }
    return pending;
  }

  void Update(const v1::Task& task) {
    const auto [it, inserted] = index_.emplace(task.id(), tasks_.size());
    if (inserted) {
      tasks_.push_back(task);
      Report(task);
      return;
    }
    v1::Task& known = tasks_[it->second];
    const bool changed = Changed(known, task);
    known = task;
    if (changed) Report(task);
  }

  // Stops following `id` (the server forgot it).
  void Forget(const std::string& id) {
    const auto it = index_.find(id);
    if (it == index_.end()) return;
    tasks_.erase(tasks_.begin() + it->second);
    index_.clear();
    for (size_t i = 0; i < tasks_.size(); ++i) index_[tasks_[i].id()] = i;
  }

  // Gets task `id`; false if the watch must stop (an RPC failed other than
  // with NOT_FOUND, which only drops the task).
  bool Fetch(const std::string& id) {
    absl::StatusOr<v1::Task> task = client_.Get(id);
    return Take(id, std::move(task));
  }

  bool Take(const std::string& id, absl::StatusOr<v1::Task> task) {
    if (task.ok()) {
      Update(*task);
      return true;
    }
    if (task.status().code() == absl::StatusCode::kNotFound) {
      if (!command_.ids.empty() || index_.count(id) == 0) {
        rpc_failed_ = true;
        ClearLive();
        ReportRpcError(task.status());
      }
      Forget(id);
      return true;
    }
    rpc_failed_ = true;
    ClearLive();
    ReportRpcError(task.status());
    return false;
  }

  // Lists the tasks matching the filters (every page) and gets those that
  // no longer match and have not ended.
  bool ListFilters() {
    v1::ListRequest request = command_.filters;
    request.set_page_size(1000);
    std::set<std::string> listed;
    for (;;) {
      absl::StatusOr<v1::ListResponse> page = client_.List(request);
      if (!page.ok()) return Take("", page.status());
      for (const v1::Task& task : page->tasks()) {
        listed.insert(task.id());
        Update(task);
      }
      if (page->next_page_token().empty()) break;
      request.set_page_token(page->next_page_token());
    }
    for (const std::string& id : Pending()) {
      if (listed.count(id) == 0 && !Fetch(id)) return false;
    }
    return true;
  }

  // Waits up to `timeout` for news: with ids, awaits the first task not
  // ended (so its end shows at once), then gets the others; with filters,
  // sleeps (the next round lists).
  bool Wait(absl::Duration timeout) {
    if (command_.ids.empty()) {
      absl::SleepFor(timeout);
      return true;
    }
    const std::vector<std::string> pending = Pending();
    if (!Take(pending.front(), client_.Await(pending.front(), timeout))) {
      return false;
    }
    for (size_t i = 1; i < pending.size(); ++i) {
      if (!Fetch(pending[i])) return false;
    }
    return true;
  }

  void Report(const v1::Task& task) {
    switch (display_) {
      case WatchDisplay::kJsonLines:
        std::cout << MessageJson(task, /*pretty=*/false) << "\n";
        std::cout.flush();
        break;
      case WatchDisplay::kIds:
        if (IsTerminal(task.state()) &&
            reported_ends_.insert(task.id()).second) {
          std::cout << task.id() << "\n";
          std::cout.flush();
        }
        break;
      case WatchDisplay::kLive:
        break;  // Show() redraws
    }
  }

  // The summary line: counts per state and a progress bar.
  std::string Summary() const {
    std::map<v1::State, size_t> counts;
    size_t ended = 0;
    for (const v1::Task& task : tasks_) {
      ++counts[task.state()];
      if (IsTerminal(task.state())) ++ended;
    }
    std::vector<std::string> parts;
    for (const auto& [state, count] : counts) {
      parts.push_back(absl::StrCat(
          count, " ", absl::AsciiStrToLower(v1::State_Name(state))));
    }
    return absl::StrCat(ProgressBar(ended, tasks_.size(), 20), " ", ended, "/",
                        tasks_.size(), " ended", parts.empty() ? "" : ": ",
                        absl::StrJoin(parts, ", "),
                        command_.ids.empty() ? "  (Ctrl-C stops)" : "");
  }

  // Redraws the live table over the previous one.
  void Show() {
    if (display_ != WatchDisplay::kLive) return;
    const TerminalSize size = GetTerminalSize();
    // Tasks not ended first, then the latest ended, as many as fit.
    std::vector<v1::Task> shown;
    for (const v1::Task& task : tasks_) {
      if (!IsTerminal(task.state())) shown.push_back(task);
    }
    for (auto it = tasks_.rbegin(); it != tasks_.rend(); ++it) {
      if (IsTerminal(it->state())) shown.push_back(*it);
    }
    const size_t room = size.rows - 3;  // summary, header, "... more"
    const size_t hidden = shown.size() > room ? shown.size() - room : 0;
    shown.resize(shown.size() - hidden);
    std::vector<std::string> lines = {Summary()};
    for (absl::string_view line : absl::StrSplit(TasksTable(shown, absl::Now()),
                                                 '\n', absl::SkipEmpty())) {
      lines.emplace_back(line);
    }
    if (hidden > 0) lines.push_back(absl::StrCat("... and ", hidden, " more"));
    std::string frame;
    if (drawn_lines_ > 0) absl::StrAppend(&frame, "\x1b[", drawn_lines_, "A");
    absl::StrAppend(&frame, "\r\x1b[J");
    for (const std::string& line : lines) {
      absl::StrAppend(&frame, line.substr(0, size.columns - 1), "\n");
    }
    drawn_lines_ = lines.size();
    std::cout << frame;
    std::cout.flush();
  }

  // Before an error line, so that the next frame does not draw over it.
  void ClearLive() { drawn_lines_ = 0; }

  int Finish() {
    if (rpc_failed_) return kExitRpcError;
    if (command_.ids.empty()) return kExitOk;
    int exit_code = kExitOk;
    for (const v1::Task& task : tasks_) {
      if (!IsTerminal(task.state())) {
        exit_code = std::max(exit_code, kExitStillRunning);
      } else if (task.state() != v1::SUCCEEDED) {
        exit_code = kExitTaskNotSucceeded;
        break;
      }
    }
    return exit_code;
  }

  Client& client_;
  const WatchCommand& command_;
  const WatchDisplay display_;
  const absl::Time deadline_;
  std::vector<v1::Task> tasks_;
  std::map<std::string, size_t> index_;
  std::set<std::string> reported_ends_;
  size_t drawn_lines_ = 0;
  bool rpc_failed_ = false;
};

}  // namespace

int RunWatch(Client& client, const WatchCommand& command,
             WatchDisplay display) {
  return Watcher(client, command, display).Run();
}

}  // namespace remex::cli
