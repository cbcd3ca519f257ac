// sdk_quickstart — a tour of the remex C++ SDK.
//
//   remex-server &
//   sdk_quickstart [127.0.0.1:50051]
#include <chrono>
#include <cstddef>
#include <future>
#include <iostream>
#include <vector>

#include "remex/remex.h"

namespace {

// Runs a CPU-bound task and waits for its result.
void CountPrimes(remex::Client& client) {
  remex::Future future =
      client.Submit("primes", remex::Json(R"({"n": 100000})"));
  std::cout << "primes task " << future.id() << " submitted\n";
  const remex::TaskResult result = future.get();
  std::cout << "primes <= 100000: " << result.json() << "\n";
}

// Starts a long sleep, waits a little, then cancels it.
void CancelSleep(remex::Client& client) {
  remex::Future future =
      client.Submit("sleep", remex::Json(R"({"ms": 60000})"));
  if (future.wait_for(std::chrono::milliseconds(100)) ==
      std::future_status::timeout) {
    std::cout << "sleep still running after 100 ms; cancelling\n";
  }
  std::cout << "cancelled: " << std::boolalpha << future.cancel() << "\n";
  try {
    future.get();
  } catch (const remex::TaskError& error) {
    std::cout << "as expected: " << error.what() << "\n";
  }
}

// Follows a task by id, as another process could, without exceptions.
void AttachById(remex::Client& client) {
  const remex::Future submitted =
      client.Submit("fail", remex::Json(R"({"message": "on purpose"})"));
  const remex::Future attached = client.Attach(submitted.id());
  const absl::StatusOr<remex::TaskResult> result = attached.result();
  std::cout << "attached to " << attached.id() << ": " << result.status()
            << "\n";
}

// Keeps several tasks in flight and takes each result as its task ends.
void InTheOrderTheyEnd(remex::Client& client) {
  std::vector<remex::Future> pending = {
      client.SubmitAsync("sleep", remex::Json(R"({"ms": 300})")),
      client.SubmitAsync("sleep", remex::Json(R"({"ms": 100})")),
      client.SubmitAsync("echo", remex::Json(R"("hello")"))};
  while (!pending.empty()) {
    const size_t i = *remex::WaitAny(pending);
    std::cout << "ended: " << pending[i].task().function() << " "
              << pending[i].get().json() << "\n";
    pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* address = argc > 1 ? argv[1] : "127.0.0.1:50051";
  remex::Client client(address);
  try {
    CountPrimes(client);
    CancelSleep(client);
    AttachById(client);
    InTheOrderTheyEnd(client);
  } catch (const remex::RpcError& error) {
    std::cerr << "RPC to " << address << " failed: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
