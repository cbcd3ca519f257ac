// remex/client.h — the entry point of the remex C++ SDK.
//
//   remex::Client client("localhost:50051");
//   remex::Future future = client.Submit("primes", remex::Json(R"({"n":
//   1000})")); std::cout << future.get().json() << "\n";
#ifndef REMEX_CLIENT_H_
#define REMEX_CLIENT_H_

#include <google/protobuf/message.h>
#include <google/protobuf/struct.pb.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "remex/future.h"
#include "remex/v1/executor.pb.h"

namespace remex {

namespace client {
class Connection;
class Session;
class TaskSlot;
}  // namespace client

// How to run one task. Zero or empty fields are unset: the server decides.
struct SubmitOptions {
  // Empty: the function's default pool.
  std::string pool;
  // Higher runs first.
  int32_t priority = 0;
  // Longest wait before the task starts.
  absl::Duration queue_timeout = absl::ZeroDuration();
  // Longest run.
  absl::Duration run_timeout = absl::ZeroDuration();
  // Runs allowed when a worker dies (server default: 1).
  int32_t max_attempts = 0;
  std::map<std::string, std::string> labels;
  // How long the server keeps the finished task.
  absl::Duration ttl = absl::ZeroDuration();
  // Raw input bytes for the function.
  std::string input;
};

struct ClientOptions {
  // Deadline of every RPC that does not wait for a task. Waits are split into
  // RPCs of at most 30 s plus this.
  absl::Duration rpc_timeout = absl::Seconds(30);
  // Submits, cancels and waits of futures go over one Session stream per
  // client: calls from many threads are batched, and a future that is waited
  // on makes no RPC of its own. False: one unary RPC per call, and waits
  // poll with Await RPCs.
  bool use_session = true;
  // Most submits the session has sent and not yet seen answered; more wait
  // for answers (flow control).
  int session_window = 4096;
  // While a call or a wait is open, the server is pinged this often; one
  // that does not answer within the same time (hung, or gone without
  // closing the connection) fails the calls and waits with UNAVAILABLE
  // instead of leaving them blocked. At least 1 s; zero turns it off.
  absl::Duration keepalive = absl::Seconds(20);

  // TLS (the server runs with --tls-cert). False: plaintext, unless one of
  // the PEM fields below is set, which turns TLS on too. The fields take
  // PEM text, as gRPC does; to use a file, read it whole, e.g.
  //   std::ifstream file("ca.pem");
  //   options.tls_root_certs.assign(std::istreambuf_iterator<char>(file), {});
  bool tls = false;
  // The CAs (PEM) that the server's certificate must chain to; empty: the
  // system's roots.
  std::string tls_root_certs;
  // This client's certificate chain and private key (PEM), for a server
  // that requires client certificates (--tls-client-ca, mTLS): the server
  // knows the client by the certificate's common name. Both or neither.
  std::string tls_cert_chain;
  std::string tls_private_key;
  // The name the server's certificate must carry, when it is not the host
  // in the address (e.g. connecting by IP to a certificate for a DNS
  // name); empty: the address's host.
  std::string tls_server_name;

  // Cancel a task when the last copy of its Future is destroyed before the
  // task is known to have ended (the cancel goes out on the SDK's watcher
  // thread; the destructor does not wait). Futures from Attach are
  // included. A future watched by OnDone, Then, WhenAll, WhenAny or
  // AsCompleted lives until its task ends, so is never dropped early.
  bool cancel_when_dropped = false;

  // Bearer token for servers with principals (--auth): sent with every
  // call, the Session stream included, as `authorization: Bearer TOKEN`.
  // It travels in clear without TLS: use TLS beyond loopback. Empty: none.
  std::string token;
};

// A connection to one remex server. Thread-safe; copies share the connection,
// which closes when the last Client and Future using it are gone. Creating a
// Client does not connect: the first call does.
//
// Methods returning Future throw RpcError when the RPC fails; methods
// returning absl::Status(Or) report every error there and never throw.
class Client {
 public:
  // `address` is "host:port" (or any gRPC target name).
  explicit Client(std::string_view address, ClientOptions options = {});

  // Submits `function(args)` and returns a future for it.
  Future Submit(std::string_view function,
                const google::protobuf::Value& args = {},
                const SubmitOptions& options = {});
  // Same, with `input` serialized into SubmitOptions::input (replacing it).
  Future Submit(std::string_view function, const google::protobuf::Value& args,
                const google::protobuf::Message& input,
                SubmitOptions options = {});
  absl::StatusOr<Future> TrySubmit(std::string_view function,
                                   const google::protobuf::Value& args = {},
                                   const SubmitOptions& options = {});
  // Submits without waiting for the server's answer, for pipelines that
  // keep many tasks in flight from one thread. A refusal (unknown function,
  // full queue, ...) surfaces when the future is used: wait() and get()
  // throw RpcError, result() returns it, and id() is empty. id() waits for
  // the answer. Without a session (use_session false) this is Submit.
  Future SubmitAsync(std::string_view function,
                     const google::protobuf::Value& args = {},
                     const SubmitOptions& options = {});

  // Runs `function` once per element of `inputs` (as its args), with at
  // most `window` tasks submitted and not yet ended at any time (a window
  // of 0 counts as 1), and blocks until all have ended. Returns one entry
  // per input, in input order: the task's result, or its error (a task
  // that did not succeed gives TaskError's code and message as a status; a
  // refused submit or a failed RPC gives its status), so one failure does
  // not stop the others. Once `stop` is stopped, the tasks in flight are
  // cancelled (Future::CancelOn) and no more are submitted: the inputs not
  // submitted get CANCELLED statuses. Never throws. Thread-safe.
  std::vector<absl::StatusOr<TaskResult>> Map(
      std::string_view function,
      absl::Span<const google::protobuf::Value> inputs, size_t window,
      const SubmitOptions& options = {}, std::stop_token stop = {});

  // A future for a task that already exists (e.g. submitted by another
  // client). Throws RpcError (NOT_FOUND) if the server does not know `id`.
  Future Attach(std::string_view id);

  // Raw calls: one per RPC, answering what the server answered.
  absl::StatusOr<v1::Task> Get(std::string_view id);
  absl::StatusOr<v1::Task> Cancel(std::string_view id);
  // The task once terminal, or as it stands when `timeout` passes
  // (absl::InfiniteDuration(): until terminal).
  absl::StatusOr<v1::Task> Await(std::string_view id, absl::Duration timeout);
  absl::Status Delete(std::string_view id);
  absl::StatusOr<v1::ListResponse> List(const v1::ListRequest& request);
  absl::StatusOr<v1::ListFunctionsResponse> ListFunctions();

 private:
  Future MakeFuture(v1::Task task);
  // A future for the session submit of `slot`.
  Future SessionFuture(std::shared_ptr<client::TaskSlot> slot,
                       std::string function, std::string pool);

  absl::Duration rpc_timeout_;
  bool cancel_when_dropped_;
  std::shared_ptr<client::Connection> connection_;
  // Null when ClientOptions::use_session is false.
  std::shared_ptr<client::Session> session_;
};

}  // namespace remex

#endif  // REMEX_CLIENT_H_
