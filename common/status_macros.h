// Status propagation macros. Abseil 20220623 (Debian 12) ships none.
#ifndef REMEX_COMMON_STATUS_MACROS_H_
#define REMEX_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns `expr` from the enclosing function if it is not OK.
#define REMEX_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::absl::Status remex_status_ = (expr);         \
    if (!remex_status_.ok()) return remex_status_; \
  } while (false)

#define REMEX_STATUS_CONCAT_INNER_(a, b) a##b
#define REMEX_STATUS_CONCAT_(a, b) REMEX_STATUS_CONCAT_INNER_(a, b)

// `lhs = value of expr`, or returns its error status from the enclosing
// function. `lhs` may be a declaration: REMEX_ASSIGN_OR_RETURN(auto x, F());
#define REMEX_ASSIGN_OR_RETURN(lhs, expr) \
  REMEX_ASSIGN_OR_RETURN_IMPL_(           \
      REMEX_STATUS_CONCAT_(remex_statusor_, __LINE__), lhs, expr)
#define REMEX_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)  \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = *std::move(statusor)

#endif  // REMEX_COMMON_STATUS_MACROS_H_
