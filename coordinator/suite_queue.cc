#include "coordinator/suite_queue.h"

#include <algorithm>
#include <utility>

namespace testfleet {

SuiteQueue::SuiteQueue(std::vector<int> order, std::vector<double> expected_ms)
    : order_(std::move(order)),
      queued_(expected_ms.size(), false),
      expected_ms_of_(std::move(expected_ms)) {
  for (int index : order_) Mark(index, true);
}

void SuiteQueue::Mark(int index, bool queued) {
  if (queued_[index] == queued) return;
  queued_[index] = queued;
  const int sign = queued ? 1 : -1;
  size_ += sign;
  expected_ms_ += sign * expected_ms_of_[index];
  // Sums of doubles drift; an empty queue holds no work.
  if (size_ == 0) expected_ms_ = 0;
}

int SuiteQueue::Pop() {
  while (!returned_.empty()) {
    const int index = returned_.front();
    returned_.pop_front();
    if (queued_[index]) {
      Mark(index, false);
      return index;
    }
  }
  while (next_ < order_.size()) {
    const int index = order_[next_++];
    if (queued_[index]) {
      Mark(index, false);
      return index;
    }
  }
  return -1;
}

void SuiteQueue::Return(int index, bool first) {
  if (queued_[index]) return;
  Mark(index, true);
  if (first) {
    returned_.push_front(index);
  } else {
    returned_.push_back(index);
  }
}

bool SuiteQueue::Remove(int index) {
  if (!queued_[index]) return false;
  Mark(index, false);
  return true;
}

double SuiteQueue::ShardTargetMs(int64_t slots, double max_ms) const {
  return std::min(max_ms, expected_ms_ / (2.0 * std::max<int64_t>(slots, 1)));
}

}  // namespace testfleet
