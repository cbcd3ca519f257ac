// The worker channel (server/process/channel.h, worker.proto), both ways:
//   - what the supervisor reads from a worker: the bytes, through its
//     FrameReader off a socket, each frame a FromWorker whose Result
//     becomes the task's end (RunEndFromResult);
//   - what a worker reads from the supervisor: the same bytes through
//     ReadMessage, each frame a ToWorker whose Run the worker runs
//     (internal::RunOne, with echo, fail and sha256: quick, real bodies).
// Bad frames are DATA_LOSS, never a crash; the answers a worker sends parse
// on the supervisor's side.
//
// Input: the bytes on the channel.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "remex/worker/v1/worker.pb.h"
#include "server/executor/cancellation.h"
#include "server/executor/function_registry.h"
#include "server/functions/builtin_functions.h"
#include "server/process/channel.h"
#include "server/process/supervisor.h"
#include "server/process/worker.h"

namespace remex::fuzz {
namespace {

namespace wire = ::remex::worker::v1;

// A connected pair of stream sockets, both non-blocking on the reading
// side, as the supervisor's. Writes of fuzz inputs (kept small by
// -max_len) fit the socket buffers.
struct Channel {
  Channel() {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      std::abort();
    }
  }
  ~Channel() {
    close(fds[0]);
    close(fds[1]);
  }
  int fds[2];
};

void Send(int fd, const uint8_t* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) std::abort();  // the buffer is large enough for -max_len
    done += static_cast<size_t>(n);
  }
}

const executor::FunctionRegistry& WorkerRegistry() {
  static const executor::FunctionRegistry* const kRegistry = [] {
    executor::FunctionRegistry builtins;
    if (!functions::RegisterBuiltinFunctions({}, builtins).ok()) std::abort();
    auto* registry = new executor::FunctionRegistry();
    for (const char* name : {"echo", "fail", "sha256"}) {
      if (!registry->Register(*builtins.Find(name)).ok()) std::abort();
    }
    return registry;
  }();
  return *kRegistry;
}

// The supervisor's side.
void Supervise(const uint8_t* data, size_t size) {
  Channel channel;
  Send(channel.fds[1], data, size);
  shutdown(channel.fds[1], SHUT_WR);
  process::FrameReader reader;
  const absl::Status read = reader.ReadAvailable(channel.fds[0]);
  if (!read.ok() && !absl::IsNotFound(read)) __builtin_trap();
  for (;;) {
    wire::FromWorker message;
    absl::StatusOr<bool> next = reader.Next(message);
    if (!next.ok()) {
      if (next.status().code() != absl::StatusCode::kDataLoss) {
        __builtin_trap();
      }
      return;
    }
    if (!*next) return;
    if (message.has_result()) {
      const process::internal::RunEnd end =
          process::internal::RunEndFromResult(message.result());
      if (end.outcome == nullptr) __builtin_trap();
    }
  }
}

// The worker's side.
void Work(const uint8_t* data, size_t size) {
  Channel channel;
  Send(channel.fds[1], data, size);
  shutdown(channel.fds[1], SHUT_WR);
  for (;;) {
    wire::ToWorker message;
    const absl::Status status = process::ReadMessage(channel.fds[0], message);
    if (absl::IsNotFound(status)) return;  // clean end
    if (!status.ok()) {
      if (status.code() != absl::StatusCode::kDataLoss) __builtin_trap();
      return;
    }
    if (!message.has_run()) continue;
    executor::CancellationToken token;
    const wire::FromWorker answer =
        process::internal::RunOne(message.run(), WorkerRegistry(), token);
    // What the supervisor would read of it.
    std::string bytes;
    if (!answer.SerializeToString(&bytes)) __builtin_trap();
    wire::FromWorker parsed;
    if (!parsed.ParseFromString(bytes)) __builtin_trap();
  }
}

}  // namespace
}  // namespace remex::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  remex::fuzz::Supervise(data, size);
  remex::fuzz::Work(data, size);
  return 0;
}
