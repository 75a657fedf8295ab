#include "coordinator/suite_queue.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace testfleet {

SuiteQueue::SuiteQueue(std::vector<int> order, std::vector<double> expected_ms,
                       double guess_ms)
    : order_(std::move(order)),
      queued_(expected_ms.size(), false),
      expected_ms_of_(std::move(expected_ms)),
      guess_ms_(guess_ms) {
  for (int index : order_) Mark(index, true);
  submitted_ms_ = this->expected_ms();  // the parameter is moved from
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

void SuiteQueue::ObserveGuessed(double wall_ms, int64_t still_running) {
  // A process takes a millisecond at least; a guess of 0 would stop the
  // last shards shrinking (ShardTargetMs).
  wall_ms = std::max(wall_ms, 1.0);
  ++guessed_observed_;
  if (sample_ms_.size() < kGuessSamples) {
    sample_ms_.push_back(wall_ms);
  } else {
    // Reservoir sampling (xorshift: deterministic, and enough to spread).
    sample_rng_ ^= sample_rng_ << 13;
    sample_rng_ ^= sample_rng_ >> 7;
    sample_rng_ ^= sample_rng_ << 17;
    const uint64_t slot =
        sample_rng_ % static_cast<uint64_t>(guessed_observed_);
    if (slot < kGuessSamples) sample_ms_[slot] = wall_ms;
  }
  // Taken again at each of the first 64 results, then every 64th.
  if (guessed_observed_ > 64 && guessed_observed_ % 64 != 0) return;
  // The (upper) median of the finished and the running is the k-th
  // shortest of them; with the running counted as longest, the k-th
  // shortest result.
  const int64_t k =
      (guessed_observed_ + std::max<int64_t>(still_running, 0)) / 2 + 1;
  if (guessed_observed_ < k) return;
  // Its rank among the results, scaled to the sample.
  const double share =
      static_cast<double>(k) / static_cast<double>(guessed_observed_);
  const size_t n = sample_ms_.size();
  const size_t at = std::min(n, static_cast<size_t>(std::ceil(share * n))) - 1;
  std::vector<double> sorted = sample_ms_;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(at),
                   sorted.end());
  guess_ms_ = sorted[at];
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
  const double fleet = static_cast<double>(std::max<int64_t>(slots, 1));
  // A suite too small to give every slot a floor's worth keeps the first
  // shards' size as its floor: all slots take part, none with a long shard.
  const double floor =
      std::min(fleet * kDispatchMsPerSlot, submitted_ms_ / (2.0 * fleet));
  return std::min(max_ms, std::max(expected_ms() / (2.0 * fleet), floor));
}

}  // namespace testfleet
