#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

/// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
///   RETURN_IF_ERROR(store.Write(x));
#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    const ::absl::Status tf_status_ = (expr); \
    if (!tf_status_.ok()) return tf_status_;  \
  } while (0)

#define TF_CONCAT_INNER_(a, b) a##b
#define TF_CONCAT_(a, b) TF_CONCAT_INNER_(a, b)

/// Evaluates `rexpr` (an absl::StatusOr<T>), returns its status on error,
/// otherwise moves the value into `lhs`.
///   ASSIGN_OR_RETURN(auto digest, Sha256File(path));
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL_(TF_CONCAT_(tf_statusor_, __LINE__), lhs, rexpr)

#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                           \
  if (!statusor.ok()) return statusor.status();      \
  lhs = std::move(statusor).value()
