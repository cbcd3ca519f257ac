#include "server/rpc/proto_mapping.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

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

// Unset or zero: no limit.
absl::StatusOr<absl::Duration> OptionalLimit(
    bool has, const google::protobuf::Duration& proto, const char* field) {
  if (!has) return absl::InfiniteDuration();
  const absl::Duration duration = common::FromProtoDuration(proto);
  if (duration < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must not be negative"));
  }
  return duration == absl::ZeroDuration() ? absl::InfiniteDuration() : duration;
}

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
  if (request.max_attempts() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_attempts must not be negative, got ", request.max_attempts()));
  }
  spec.max_attempts = request.max_attempts() == 0 ? 1 : request.max_attempts();
  spec.labels.insert(request.labels().begin(), request.labels().end());
  if (request.has_ttl()) {
    spec.ttl = common::FromProtoDuration(request.ttl());
    if (spec.ttl < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("ttl must not be negative");
    }
  }
  return spec;
}

void TaskToProto(const executor::TaskSnapshot& snapshot, v1::Task* task) {
  const executor::TaskSpec& spec = *snapshot.spec;
  task->set_id(snapshot.id);
  task->set_function(spec.function);
  task->set_pool(spec.pool);
  task->set_state(static_cast<v1::State>(snapshot.state));
  task->set_attempt(snapshot.attempt);
  task->set_priority(spec.priority);
  task->set_max_attempts(spec.max_attempts);
  task->set_cancel_requested(snapshot.cancel_requested);
  task->mutable_labels()->insert(spec.labels.begin(), spec.labels.end());
  common::SetProtoTimestamp(snapshot.created_at, task->mutable_created_at());
  if (snapshot.started_at != absl::InfinitePast()) {
    common::SetProtoTimestamp(snapshot.started_at, task->mutable_started_at());
  }
  if (snapshot.finished_at != absl::InfinitePast()) {
    common::SetProtoTimestamp(snapshot.finished_at,
                              task->mutable_finished_at());
  }
  if (snapshot.outcome == nullptr) return;
  const executor::TaskOutcome& outcome = *snapshot.outcome;
  if (!outcome.result.is_null())
    JsonToValue(outcome.result, task->mutable_result());
  task->set_output(outcome.output);
  if (outcome.error.code != absl::StatusCode::kOk) {
    task->mutable_error()->set_code(static_cast<int32_t>(outcome.error.code));
    task->mutable_error()->set_message(outcome.error.message);
  }
}

absl::StatusOr<executor::ListQuery> ListQueryFromProto(
    const v1::ListRequest& request) {
  executor::ListQuery query;
  if (request.state() != v1::STATE_UNSPECIFIED) {
    if (!v1::State_IsValid(request.state())) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown state ", request.state()));
    }
    query.state = static_cast<executor::TaskState>(request.state());
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

void FunctionsToProto(const executor::Executor& executor,
                      v1::ListFunctionsResponse* response) {
  for (const executor::FunctionSpec* function : executor.functions().List()) {
    v1::FunctionInfo* info = response->add_functions();
    info->set_name(function->name);
    info->set_description(function->description);
    info->set_default_pool(executor.DefaultPoolOf(*function));
  }
  for (const executor::PoolStats& pool : executor.PoolStatistics()) {
    v1::PoolInfo* info = response->add_pools();
    info->set_name(pool.name);
    info->set_kind(std::string(executor::PoolKindName(pool.kind)));
    info->set_workers(pool.workers);
    info->set_max_queue(static_cast<int64_t>(pool.max_queue));
  }
}

}  // namespace remex::rpc
