#include "coordinator/suite_queue.h"

#include <algorithm>
#include <utility>

namespace testfleet {

SuiteQueue::SuiteQueue(std::vector<int> order, std::vector<double> expected_ms,
                       double guess_ms)
    : order_(std::move(order)),
      queued_(expected_ms.size(), false),
      expected_ms_of_(std::move(expected_ms)),
      guess_ms_(guess_ms) {
  for (int index : order_) Mark(index, true);
}

void SuiteQueue::Mark(int index, bool queued) {
  if (queued_[index] == queued) return;
  queued_[index] = queued;
  const int sign = queued ? 1 : -1;
  size_ += sign;
  if (Guessed(index)) {
    guessed_ += sign;
  } else {
    known_ms_ += sign * expected_ms_of_[index];
  }
  // Sums of doubles drift; an empty queue holds no work.
  if (size_ == 0) known_ms_ = 0;
}

void SuiteQueue::ObserveGuessed(double wall_ms) {
  if (observed_ms_.size() >= kGuessSamples) return;
  // A process takes a millisecond at least; a guess of 0 would stop the
  // last shards shrinking (ShardTargetMs).
  observed_ms_.push_back(std::max(wall_ms, 1.0));
  const size_t n = observed_ms_.size();
  if ((n & (n - 1)) != 0) return;  // a power of two: take the median again
  std::vector<double> sorted = observed_ms_;
  std::nth_element(sorted.begin(), sorted.begin() + n / 2, sorted.end());
  guess_ms_ = sorted[n / 2];
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
  return std::min(max_ms, expected_ms() / (2.0 * std::max<int64_t>(slots, 1)));
}

}  // namespace testfleet
