// fan_out_fan_in — many tasks out, one answer back, two ways: Client::Map
// (blocking, a bounded number in flight) and submits joined by WhenAll and
// Then (nothing blocks until the total is asked for).
//
//   remex-server &
//   fan_out_fan_in [127.0.0.1:50051]
#include <iostream>
#include <vector>

#include "remex/remex.h"

int main(int argc, char** argv) {
  remex::Client client(argc > 1 ? argv[1] : "127.0.0.1:50051");
  std::vector<google::protobuf::Value> inputs;
  for (int n = 10000; n <= 80000; n += 10000) {
    inputs.push_back(remex::Json("{\"n\": " + std::to_string(n) + "}"));
  }

  // Fan out with at most 4 tasks in flight; results come in input order.
  double map_total = 0;
  for (const absl::StatusOr<remex::TaskResult>& result :
       client.Map("primes", inputs, /*window=*/4)) {
    if (!result.ok()) {
      std::cerr << result.status() << "\n";
      return 1;
    }
    map_total += result->value().number_value();
  }
  std::cout << "map total: " << map_total << "\n";

  // Fan out all at once, fan in with a continuation on our own thread.
  remex::ThreadExecutor executor;  // outlives the continuation below
  std::vector<remex::Future> futures;
  for (const google::protobuf::Value& input : inputs) {
    futures.push_back(client.SubmitAsync("primes", input));
  }
  const remex::Continuation<double> total = remex::WhenAll(futures).Then(
      [&futures](const remex::Continuation<void>&) {
        double sum = 0;
        for (const remex::Future& future : futures) {
          sum += future.get().value().number_value();  // throws on failure
        }
        return sum;
      },
      executor);
  try {
    std::cout << "then total: " << total.get() << "\n";
  } catch (const std::exception& error) {
    std::cerr << error.what() << "\n";
    return 1;
  }
  return 0;
}
