#include "remex/client.h"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "client/channel.h"
#include "client/connection.h"
#include "client/session.h"
#include "common/proto_time.h"
#include "remex/errors.h"
#include "sdk/src/future_state.h"
#include "sdk/src/value_or_throw.h"
#include "sdk/src/watcher.h"

namespace remex {
namespace {

using internal::ValueOrThrow;

// Sets the duration field that `mutable_field` returns from `duration`
// unless it is zero (unset): unset fields are not sent at all.
template <class MutableField>
void SetDuration(absl::Duration duration, MutableField mutable_field) {
  if (duration != absl::ZeroDuration()) {
    *mutable_field() = common::ToProtoDuration(duration);
  }
}

v1::SubmitRequest MakeSubmitRequest(std::string_view function,
                                    const google::protobuf::Value& args,
                                    const SubmitOptions& options) {
  v1::SubmitRequest request;
  request.set_function(std::string(function));
  if (args.kind_case() != google::protobuf::Value::KIND_NOT_SET) {
    *request.mutable_args() = args;
  }
  if (!options.input.empty()) request.set_input(options.input);
  if (!options.pool.empty()) request.set_pool(options.pool);
  request.set_priority(options.priority);
  SetDuration(options.queue_timeout,
              [&] { return request.mutable_queue_timeout(); });
  SetDuration(options.run_timeout,
              [&] { return request.mutable_run_timeout(); });
  request.set_max_attempts(options.max_attempts);
  if (!options.labels.empty()) {
    request.mutable_labels()->insert(options.labels.begin(),
                                     options.labels.end());
  }
  SetDuration(options.ttl, [&] { return request.mutable_ttl(); });
  return request;
}

}  // namespace

Client::Client(std::string_view address, ClientOptions options)
    : rpc_timeout_(options.rpc_timeout),
      cancel_when_dropped_(options.cancel_when_dropped) {
  std::shared_ptr<grpc::Channel> channel = client::MakeChannel(
      address, {.keepalive = options.keepalive,
                .tls = options.tls || !options.tls_root_certs.empty() ||
                       !options.tls_cert_chain.empty(),
                .tls_root_certs = options.tls_root_certs,
                .tls_cert_chain = options.tls_cert_chain,
                .tls_private_key = options.tls_private_key,
                .tls_server_name = options.tls_server_name});
  connection_ = std::make_shared<client::Connection>(
      channel, options.rpc_timeout, options.token);
  if (options.use_session) {
    session_ = std::make_shared<client::Session>(
        std::move(channel), options.session_window, options.token);
  }
}

Future Client::Submit(std::string_view function,
                      const google::protobuf::Value& args,
                      const SubmitOptions& options) {
  return ValueOrThrow(TrySubmit(function, args, options));
}

Future Client::Submit(std::string_view function,
                      const google::protobuf::Value& args,
                      const google::protobuf::Message& input,
                      SubmitOptions options) {
  options.input = input.SerializeAsString();
  return Submit(function, args, options);
}

absl::StatusOr<Future> Client::TrySubmit(std::string_view function,
                                         const google::protobuf::Value& args,
                                         const SubmitOptions& options) {
  if (session_ != nullptr) {
    std::shared_ptr<client::TaskSlot> slot =
        session_->Submit(MakeSubmitRequest(function, args, options));
    const absl::Status accepted =
        slot->WaitAccepted(absl::Now() + rpc_timeout_);
    if (!accepted.ok()) return accepted;
    return SessionFuture(std::move(slot), std::string(function), options.pool);
  }
  absl::StatusOr<v1::Task> task =
      connection_->Submit(MakeSubmitRequest(function, args, options));
  if (!task.ok()) return task.status();
  return MakeFuture(*std::move(task));
}

Future Client::SubmitAsync(std::string_view function,
                           const google::protobuf::Value& args,
                           const SubmitOptions& options) {
  if (session_ == nullptr) return Submit(function, args, options);
  return SessionFuture(
      session_->Submit(MakeSubmitRequest(function, args, options)),
      std::string(function), options.pool);
}

Future Client::SessionFuture(std::shared_ptr<client::TaskSlot> slot,
                             std::string function, std::string pool) {
  v1::Task first;
  first.set_function(std::move(function));
  first.set_pool(std::move(pool));
  first.set_state(v1::QUEUED);
  return Future(std::make_shared<internal::FutureState>(
      connection_, session_, std::move(slot), std::move(first),
      cancel_when_dropped_));
}

namespace {

// The inputs whose task ended, as the watcher reports them to Map. Shared
// with the watcher's actions, which may still be returning when Map does.
struct MapInbox {
  absl::Mutex mu;
  std::vector<size_t> ended ABSL_GUARDED_BY(mu);
};

bool HasEnded(std::vector<size_t>* ended) { return !ended->empty(); }

}  // namespace

std::vector<absl::StatusOr<TaskResult>> Client::Map(
    std::string_view function, absl::Span<const google::protobuf::Value> inputs,
    size_t window, const SubmitOptions& options, std::stop_token stop) {
  window = std::max<size_t>(window, 1);
  std::vector<absl::StatusOr<TaskResult>> results(
      inputs.size(), absl::UnknownError("not run"));
  // The tasks in flight, by input index. Each one's end reaches `inbox`
  // through the watcher (a settle hook, nothing scanned), so a task end
  // costs the same whatever the window.
  absl::flat_hash_map<size_t, Future> running;
  auto inbox = std::make_shared<MapInbox>();
  std::vector<size_t> ended;
  size_t next = 0;
  while (next < inputs.size() || !running.empty()) {
    while (next < inputs.size() && running.size() < window) {
      const size_t index = next++;
      if (stop.stop_requested()) {
        results[index] = absl::CancelledError("Map stopped before submitting");
        continue;
      }
      // SubmitAsync never throws with a session: a refusal is the result.
      try {
        Future future = SubmitAsync(function, inputs[index], options);
        if (stop.stop_possible()) future.CancelOn(stop);
        internal::WhenDone(internal::FutureAccess::Shared(future),
                           [inbox, index] {
                             absl::MutexLock lock(&inbox->mu);
                             inbox->ended.push_back(index);
                           });
        running.emplace(index, std::move(future));
      } catch (const RpcError& error) {
        results[index] = error.status();
      }
    }
    if (running.empty()) continue;
    {
      absl::MutexLock lock(&inbox->mu);
      inbox->mu.Await(absl::Condition(&HasEnded, &inbox->ended));
      ended.swap(inbox->ended);
    }
    for (const size_t index : ended) {
      auto it = running.find(index);
      results[index] = it->second.result();
      running.erase(it);
    }
    ended.clear();
  }
  return results;
}

Future Client::Attach(std::string_view id) {
  return MakeFuture(ValueOrThrow(Get(id)));
}

absl::StatusOr<v1::Task> Client::Get(std::string_view id) {
  return connection_->Get(std::string(id));
}

absl::StatusOr<v1::Task> Client::Cancel(std::string_view id) {
  return connection_->Cancel(std::string(id));
}

absl::StatusOr<v1::Task> Client::Await(std::string_view id,
                                       absl::Duration timeout) {
  return connection_->Await(std::string(id), timeout);
}

absl::Status Client::Delete(std::string_view id) {
  return connection_->Delete(std::string(id));
}

absl::StatusOr<v1::ListResponse> Client::List(const v1::ListRequest& request) {
  return connection_->List(request);
}

absl::StatusOr<v1::ListFunctionsResponse> Client::ListFunctions() {
  return connection_->ListFunctions();
}

Future Client::MakeFuture(v1::Task task) {
  if (session_ == nullptr || IsTerminal(task.state())) {
    return Future(std::make_shared<internal::FutureState>(
        connection_, nullptr, nullptr, std::move(task), cancel_when_dropped_));
  }
  std::shared_ptr<client::TaskSlot> slot = session_->Watch(task.id());
  return Future(std::make_shared<internal::FutureState>(
      connection_, session_, std::move(slot), std::move(task),
      cancel_when_dropped_));
}

}  // namespace remex
