#include "server/rpc/proto_mapping.h"

#include <google/protobuf/io/coded_stream.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "common/task_error.h"

namespace remex::rpc {
namespace {

using executor::Json;

Json NumberToJson(double number) {
  constexpr double kInt64Limit = 9.2233720368547758e18;
  if (std::isfinite(number) && std::trunc(number) == number &&
      std::fabs(number) < kInt64Limit) {
    return static_cast<int64_t>(number);
  }
  return number;
}

// Unset or zero: no limit. A negative limit is passed on for the executor
// to refuse (it validates every request, whichever way it came).
absl::StatusOr<absl::Duration> OptionalLimit(
    bool has, const google::protobuf::Duration& proto,
    absl::string_view field) {
  if (!has) return absl::InfiniteDuration();
  REMEX_ASSIGN_OR_RETURN(const absl::Duration duration,
                         common::FromProtoDuration(proto, field));
  return duration == absl::ZeroDuration() ? absl::InfiniteDuration() : duration;
}

// The two state enums share their numbers, so a state maps by a cast.
constexpr bool SameNumber(executor::TaskState state, v1::State proto) {
  return static_cast<int>(state) == static_cast<int>(proto);
}
static_assert(SameNumber(executor::TaskState::kQueued, v1::QUEUED));
static_assert(SameNumber(executor::TaskState::kRunning, v1::RUNNING));
static_assert(SameNumber(executor::TaskState::kSucceeded, v1::SUCCEEDED));
static_assert(SameNumber(executor::TaskState::kFailed, v1::FAILED));
static_assert(SameNumber(executor::TaskState::kCancelled, v1::CANCELLED));
static_assert(SameNumber(executor::TaskState::kTimedOut, v1::TIMED_OUT));
static_assert(SameNumber(executor::TaskState::kWorkerLost, v1::WORKER_LOST));
static_assert(v1::State_MAX == v1::WORKER_LOST,
              "every v1.State needs an executor::TaskState");

}  // namespace

Json JsonFromValue(const google::protobuf::Value& value) {
  switch (value.kind_case()) {
    case google::protobuf::Value::kNumberValue:
      return NumberToJson(value.number_value());
    case google::protobuf::Value::kStringValue:
      return value.string_value();
    case google::protobuf::Value::kBoolValue:
      return value.bool_value();
    case google::protobuf::Value::kStructValue: {
      Json object = Json::object();
      for (const auto& [key, field] : value.struct_value().fields()) {
        object[key] = JsonFromValue(field);
      }
      return object;
    }
    case google::protobuf::Value::kListValue: {
      Json array = Json::array();
      for (const auto& element : value.list_value().values()) {
        array.push_back(JsonFromValue(element));
      }
      return array;
    }
    case google::protobuf::Value::kNullValue:
    case google::protobuf::Value::KIND_NOT_SET:
      break;
  }
  return nullptr;
}

void JsonToValue(const Json& json, google::protobuf::Value* value) {
  switch (json.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded:
      value->set_null_value(google::protobuf::NULL_VALUE);
      return;
    case Json::value_t::boolean:
      value->set_bool_value(json.get<bool>());
      return;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      value->set_number_value(json.get<double>());
      return;
    case Json::value_t::string:
      value->set_string_value(json.get<std::string>());
      return;
    case Json::value_t::binary:
      value->set_string_value(json.dump());
      return;
    case Json::value_t::array: {
      auto* list = value->mutable_list_value();
      for (const Json& element : json) JsonToValue(element, list->add_values());
      return;
    }
    case Json::value_t::object: {
      auto* fields = value->mutable_struct_value()->mutable_fields();
      for (const auto& [key, field] : json.items()) {
        JsonToValue(field, &(*fields)[key]);
      }
      return;
    }
  }
}

absl::StatusOr<executor::TaskSpec> TaskSpecFromProto(
    const v1::SubmitRequest& request) {
  executor::TaskSpec spec;
  spec.function = request.function();
  spec.args = JsonFromValue(request.args());
  spec.input = request.input();
  spec.pool = request.pool();
  spec.priority = request.priority();
  REMEX_ASSIGN_OR_RETURN(
      spec.queue_timeout,
      OptionalLimit(request.has_queue_timeout(), request.queue_timeout(),
                    "queue_timeout"));
  REMEX_ASSIGN_OR_RETURN(spec.run_timeout,
                         OptionalLimit(request.has_run_timeout(),
                                       request.run_timeout(), "run_timeout"));
  // Unset is one attempt; a negative budget is the executor's to refuse.
  spec.max_attempts = request.max_attempts() == 0 ? 1 : request.max_attempts();
  spec.labels.insert(request.labels().begin(), request.labels().end());
  if (request.has_ttl()) {
    REMEX_ASSIGN_OR_RETURN(spec.ttl,
                           common::FromProtoDuration(request.ttl(), "ttl"));
  }
  return spec;
}

v1::State StateToProto(executor::TaskState state) {
  return static_cast<v1::State>(state);
}

executor::TaskState StateFromProto(v1::State state) {
  return static_cast<executor::TaskState>(state);
}

namespace {

// Everything of the task but its outcome.
void TaskHeadToProto(const executor::TaskSnapshot& snapshot, v1::Task* task) {
  const executor::TaskSpec& spec = *snapshot.spec;
  task->set_id(snapshot.id);
  task->set_function(spec.function);
  task->set_pool(spec.pool);
  task->set_state(StateToProto(snapshot.state));
  task->set_attempt(snapshot.attempt);
  task->set_priority(spec.priority);
  task->set_max_attempts(spec.max_attempts);
  task->set_cancel_requested(snapshot.cancel_requested);
  task->set_owner(spec.owner);
  task->mutable_labels()->insert(spec.labels.begin(), spec.labels.end());
  common::SetProtoTimestamp(snapshot.created_at, task->mutable_created_at());
  if (snapshot.started_at != absl::InfinitePast()) {
    common::SetProtoTimestamp(snapshot.started_at, task->mutable_started_at());
  }
  if (snapshot.finished_at != absl::InfinitePast()) {
    common::SetProtoTimestamp(snapshot.finished_at,
                              task->mutable_finished_at());
  }
}

void ErrorToProto(const executor::TaskOutcome& outcome, v1::Task* task) {
  // Only a failed task carries an error (an empty one would still be sent).
  if (outcome.error.code != absl::StatusCode::kOk) {
    common::ToTaskError(outcome.error.code, outcome.error.message,
                        task->mutable_error());
  }
}

// Bytes a message or string of `size` bytes takes as a field numbered
// below 16: tag, length, body.
size_t FieldBytes(size_t size) {
  return 1 + google::protobuf::io::CodedOutputStream::VarintSize64(size) + size;
}

// The task without its result and output and, if it still passes
// `max_bytes`, without its labels and error message.
void TrimmedTaskToProto(const executor::TaskSnapshot& snapshot,
                        size_t max_bytes, v1::Task* task) {
  TaskHeadToProto(snapshot, task);
  if (snapshot.outcome != nullptr) ErrorToProto(*snapshot.outcome, task);
  if (FieldBytes(task->ByteSizeLong()) <= max_bytes) return;
  task->clear_labels();
  if (task->has_error()) task->mutable_error()->clear_message();
}

// Maps the task whole if it fits `max_bytes`, else trimmed: true if
// trimmed. A payload that cannot fit is not copied at all.
bool TaskToProtoWithin(const executor::TaskSnapshot& snapshot, size_t max_bytes,
                       v1::Task* task) {
  const bool may_fit = snapshot.outcome == nullptr ||
                       snapshot.outcome->ApproximateBytes() <= max_bytes;
  if (may_fit) {
    TaskToProto(snapshot, task);
    if (FieldBytes(task->ByteSizeLong()) <= max_bytes) return false;
    task->Clear();
  }
  TrimmedTaskToProto(snapshot, max_bytes, task);
  return true;
}

}  // namespace

void TaskToProto(const executor::TaskSnapshot& snapshot, v1::Task* task) {
  TaskHeadToProto(snapshot, task);
  if (snapshot.outcome == nullptr) return;
  const executor::TaskOutcome& outcome = *snapshot.outcome;
  if (!outcome.result.is_null())
    JsonToValue(outcome.result, task->mutable_result());
  task->set_output(outcome.output);
  ErrorToProto(outcome, task);
}

void ListPageToProto(const executor::ListPage& page, size_t max_bytes,
                     v1::ListResponse* response) {
  size_t used = 0;
  const executor::TaskSnapshot* last_listed = nullptr;
  for (const executor::TaskSnapshot& snapshot : page.tasks) {
    v1::Task task;
    const bool trimmed = TaskToProtoWithin(snapshot, max_bytes, &task);
    const size_t bytes = FieldBytes(task.ByteSizeLong()) +
                         (trimmed ? FieldBytes(snapshot.id.size()) : 0);
    if (response->tasks_size() > 0 && used + bytes > max_bytes) {
      response->set_next_page_token(
          executor::ListPageToken(last_listed->list_position));
      return;
    }
    used += bytes;
    last_listed = &snapshot;
    if (trimmed) response->add_trimmed_task_ids(snapshot.id);
    *response->add_tasks() = std::move(task);
  }
  response->set_next_page_token(page.next_page_token);
}

absl::StatusOr<executor::ListQuery> ListQueryFromProto(
    const v1::ListRequest& request) {
  executor::ListQuery query;
  if (request.state() != v1::STATE_UNSPECIFIED) {
    if (!v1::State_IsValid(request.state())) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown state ", request.state()));
    }
    query.state = StateFromProto(request.state());
  }
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError("page_size must not be negative");
  }
  query.function = request.function();
  query.pool = request.pool();
  query.page_size = request.page_size();
  query.page_token = request.page_token();
  return query;
}

void FunctionsToProto(const TaskService& tasks,
                      v1::ListFunctionsResponse* response) {
  for (const executor::FunctionSpec* function : tasks.functions().List()) {
    v1::FunctionInfo* info = response->add_functions();
    info->set_name(function->name);
    info->set_description(function->description);
    info->set_default_pool(tasks.DefaultPoolOf(*function));
  }
  for (const executor::PoolStats& pool : tasks.PoolStatistics()) {
    v1::PoolInfo* info = response->add_pools();
    info->set_name(pool.name);
    info->set_kind(std::string(executor::PoolKindName(pool.kind)));
    info->set_workers(pool.workers);
    info->set_max_queue(static_cast<int64_t>(pool.max_queue));
  }
}

}  // namespace remex::rpc
