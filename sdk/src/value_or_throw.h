// Turns an absl::StatusOr into a value or an RpcError, for the throwing
// parts of the SDK.
#ifndef REMEX_SDK_SRC_VALUE_OR_THROW_H_
#define REMEX_SDK_SRC_VALUE_OR_THROW_H_

#include <utility>

#include "absl/status/statusor.h"
#include "remex/errors.h"

namespace remex::internal {

// The value of `value`, or throws RpcError with its status.
template <class T>
T ValueOrThrow(absl::StatusOr<T> value) {
  if (!value.ok()) throw RpcError(value.status());
  return *std::move(value);
}

}  // namespace remex::internal

#endif  // REMEX_SDK_SRC_VALUE_OR_THROW_H_
