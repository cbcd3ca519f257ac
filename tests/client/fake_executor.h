// An in-process remex.v1.Executor on 127.0.0.1 (port 0) with scripted
// answers, to test the client transport against exact replies and errors.
#ifndef REMEX_TESTS_CLIENT_FAKE_EXECUTOR_H_
#define REMEX_TESTS_CLIENT_FAKE_EXECUTOR_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "remex/v1/executor.grpc.pb.h"

namespace remex::testing {

// The unary methods answer from a table of tasks: Get returns the task,
// Await returns it once terminal or when the request's timeout passes,
// Cancel ends a task that is not terminal CANCELLED, and an id not in the
// table is NOT_FOUND. Submit refuses every request with the status set by
// RefuseSubmits.
//
// The Session stream answers each item at once, by its function (submits)
// or id (watches, cancels):
//   function "echo"    accepted as "echo-SEQ", then done SUCCEEDED with
//                      result = args;
//   function "hold"    accepted as "hold-SEQ", never done;
//   function "break"   not answered: the stream ends with UNAVAILABLE
//                      "fake break" after the answers written before it;
//   function "badcode" failed with code number 99 (no google.rpc code);
//   any other          failed NOT_FOUND "no function NAME";
//   watch of a task in the table: accepted, then, if it is terminal, done
//                      with it (a later Put does not end the watch);
//   watch of another id: failed NOT_FOUND;
//   cancel of an id in the table: accepted (and the task ends CANCELLED);
//   cancel of another id: failed NOT_FOUND.
//
// Thread-safe. Owns its gRPC server; the destructor shuts it down.
class FakeExecutor final : public v1::Executor::Service {
 public:
  // Serves plaintext, or with `credentials` (e.g. TLS).
  explicit FakeExecutor(
      std::shared_ptr<grpc::ServerCredentials> credentials = nullptr);
  ~FakeExecutor() override;

  // "127.0.0.1:PORT".
  const std::string& address() const { return address_; }
  // Stops the server at once, cancelling open calls.
  void Shutdown();

  // Adds or replaces a task in the table (and wakes Awaits of it).
  void Put(v1::Task task);
  void RefuseSubmits(grpc::Status status);
  // Session streams opened so far.
  int sessions() const;
  // Unary RPCs answered so far, by method name ("Await", "Get", ...).
  int calls(const std::string& method) const;
  // The `authorization` metadata of the last call of `method` ("Session":
  // the last stream opened); empty if it had none or none came.
  std::string authorization(const std::string& method) const;
  // Waits until `method` was called `n` times (counted as the call
  // arrives); false if `timeout` passed first.
  bool WaitForCalls(const std::string& method, int n,
                    absl::Duration timeout) const;

  grpc::Status Submit(grpc::ServerContext* context,
                      const v1::SubmitRequest* request,
                      v1::Task* response) override;
  grpc::Status Await(grpc::ServerContext* context,
                     const v1::AwaitRequest* request,
                     v1::Task* response) override;
  grpc::Status Cancel(grpc::ServerContext* context,
                      const v1::CancelRequest* request,
                      v1::Task* response) override;
  grpc::Status Get(grpc::ServerContext* context, const v1::GetRequest* request,
                   v1::Task* response) override;
  grpc::Status Session(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::SessionResponse, v1::SessionRequest>* stream)
      override;

 private:
  // Answers `request` into `response`; false if the stream must break.
  bool AnswerLocked(const v1::SessionRequest& request,
                    v1::SessionResponse* response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts a call of `method` and records its authorization metadata.
  void RecordCallLocked(const std::string& method,
                        const grpc::ServerContext& context)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Copies the task `id` into `task`, or returns NOT_FOUND.
  grpc::Status FindLocked(const std::string& id, v1::Task* task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, v1::Task> tasks_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> authorization_
      ABSL_GUARDED_BY(mu_);
  grpc::Status submit_status_ ABSL_GUARDED_BY(mu_);
  int sessions_ ABSL_GUARDED_BY(mu_) = 0;
  std::string address_;
  // Kept past server_, which uses them until it is destroyed.
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace remex::testing

#endif  // REMEX_TESTS_CLIENT_FAKE_EXECUTOR_H_
