#include "tests/executor/fake_store.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace remex::executor::testing {

FakeStore::FakeStore() : thread_([this] { Loop(); }) {}

FakeStore::~FakeStore() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    held_ = false;
    down_ = false;
  }
  thread_.join();
}

void FakeStore::Enqueue(Operation operation) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(operation));
}

void FakeStore::Loop() {
  for (;;) {
    Operation operation;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](FakeStore* store) ABSL_EXCLUSIVE_LOCKS_REQUIRED(store->mu_) {
            return store->stopping_ || store->Runnable();
          },
          this));
      if (!Runnable()) return;  // stopping, and everything answered
      std::deque<Operation>& from = urgent_.empty() ? queue_ : urgent_;
      operation = std::move(from.front());
      from.pop_front();
      running_ = true;
    }
    operation();
    absl::MutexLock lock(&mu_);
    running_ = false;
  }
}

bool FakeStore::Runnable() const {
  return !held_ && (!urgent_.empty() || (!down_ && !queue_.empty()));
}

void FakeStore::Insert(TaskSnapshot task, bool /*run_here*/, InsertDone done) {
  {
    absl::MutexLock lock(&mu_);
    if (down_) {
      urgent_.push_back([done = std::move(done)]() mutable {
        done(absl::UnavailableError("the store cannot commit: it is down"));
      });
      return;
    }
  }
  Enqueue([this, task = std::move(task), done = std::move(done)]() mutable {
    uint64_t position;
    {
      absl::MutexLock lock(&mu_);
      position = ++last_position_;
      task.list_position = position;
      by_position_[position] = task.id;
      rows_[task.id] = task;
      ++commits_;
    }
    done(position);
  });
}

void FakeStore::Update(TaskSnapshot task, absl::Time /*expire_at*/,
                       bool /*release*/, UpdateDone done) {
  Enqueue([this, task = std::move(task), done = std::move(done)]() mutable {
    {
      absl::MutexLock lock(&mu_);
      auto it = rows_.find(task.id);
      if (it != rows_.end()) {
        task.list_position = it->second.list_position;
        it->second = std::move(task);
      }
      ++commits_;
    }
    if (done) done();
  });
}

void FakeStore::Erase(std::string id, Visibility visibility, EraseDone done) {
  Enqueue([this, id = std::move(id), visibility = std::move(visibility),
           done = std::move(done)]() mutable {
    absl::Status status;
    {
      absl::MutexLock lock(&mu_);
      absl::StatusOr<TaskSnapshot> row = Visible(id, visibility);
      status = row.status();
      if (row.ok()) {
        by_position_.erase(row->list_position);
        rows_.erase(id);
      }
    }
    done(std::move(status));
  });
}

void FakeStore::Get(std::string id, Visibility visibility, GetDone done) {
  Enqueue([this, id = std::move(id), visibility = std::move(visibility),
           done = std::move(done)]() mutable {
    absl::StatusOr<TaskSnapshot> row;
    {
      absl::MutexLock lock(&mu_);
      row = Visible(id, visibility);
    }
    done(std::move(row));
  });
}

void FakeStore::List(ListQuery query, Visibility visibility, ListDone done) {
  Enqueue([this, query = std::move(query), visibility = std::move(visibility),
           done = std::move(done)]() mutable {
    uint64_t after = 0;
    if (!query.page_token.empty()) {
      std::optional<uint64_t> position = ParseListPageToken(query.page_token);
      if (!position.has_value()) {
        return done(absl::InvalidArgumentError("bad page_token"));
      }
      after = *position;
    }
    const size_t page_size =
        query.page_size <= 0
            ? ListQuery::kDefaultPageSize
            : std::min(query.page_size, ListQuery::kMaxPageSize);
    ListPage page;
    {
      absl::MutexLock lock(&mu_);
      for (auto it = by_position_.upper_bound(after); it != by_position_.end();
           ++it) {
        const TaskSnapshot& row = rows_.at(it->second);
        if (!visibility.Sees(*row.spec)) continue;
        if (query.state.has_value() && row.state != *query.state) continue;
        if (page.tasks.size() == page_size) {
          page.next_page_token = ListPageToken(page.tasks.back().list_position);
          break;
        }
        page.tasks.push_back(row);
      }
    }
    done(std::move(page));
  });
}

void FakeStore::RequestCancel(std::string id, Visibility visibility,
                              GetDone done) {
  Get(std::move(id), std::move(visibility), std::move(done));
}

absl::StatusOr<std::vector<TaskSnapshot>> FakeStore::LoadUnfinished() {
  absl::MutexLock lock(&mu_);
  std::vector<TaskSnapshot> unfinished;
  for (const auto& [position, id] : by_position_) {
    const TaskSnapshot& row = rows_.at(id);
    if (!IsTerminal(row.state)) unfinished.push_back(row);
  }
  return unfinished;
}

bool FakeStore::CanCommit() const {
  absl::MutexLock lock(&mu_);
  return !down_;
}

void FakeStore::Hold() {
  absl::MutexLock lock(&mu_);
  held_ = true;
}

void FakeStore::Release() {
  absl::MutexLock lock(&mu_);
  held_ = false;
}

void FakeStore::SetDown(bool down) {
  absl::MutexLock lock(&mu_);
  down_ = down;
}

void FakeStore::Put(TaskSnapshot task) {
  absl::MutexLock lock(&mu_);
  last_position_ = std::max(last_position_, task.list_position);
  by_position_[task.list_position] = task.id;
  rows_[task.id] = std::move(task);
}

absl::StatusOr<TaskSnapshot> FakeStore::Row(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  return Visible(id, Visibility{});
}

int64_t FakeStore::commits() const {
  absl::MutexLock lock(&mu_);
  return commits_;
}

size_t FakeStore::pending() const {
  absl::MutexLock lock(&mu_);
  return queue_.size() + urgent_.size() + (running_ ? 1 : 0);
}

absl::StatusOr<TaskSnapshot> FakeStore::Visible(
    const std::string& id, const Visibility& visibility) const {
  auto it = rows_.find(id);
  if (it == rows_.end() || !visibility.Sees(*it->second.spec)) {
    return absl::NotFoundError(absl::StrCat("no task ", id));
  }
  return it->second;
}

}  // namespace remex::executor::testing
