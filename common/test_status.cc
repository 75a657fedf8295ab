#include "common/test_status.h"

namespace testfleet {

std::string StatusName(v1::TestStatus status) {
  switch (status) {
    case v1::TEST_STATUS_PASSED:
      return "passed";
    case v1::TEST_STATUS_FAILED:
      return "failed";
    case v1::TEST_STATUS_TIMED_OUT:
      return "timed_out";
    case v1::TEST_STATUS_MEMORY_EXCEEDED:
      return "memory_exceeded";
    case v1::TEST_STATUS_CANCELLED:
      return "cancelled";
    case v1::TEST_STATUS_SKIPPED:
      return "skipped";
    default:
      return "error";
  }
}

bool IsFailure(v1::TestStatus status) {
  // An unset status is reported as "error" (StatusName): a failure too.
  return status != v1::TEST_STATUS_PASSED &&
         status != v1::TEST_STATUS_SKIPPED &&
         status != v1::TEST_STATUS_CANCELLED;
}

}  // namespace testfleet
