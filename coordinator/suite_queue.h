#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace testfleet {

/// The tests of one suite waiting for a worker, in dispatch order: tests
/// given back (lost with a worker, or retried) first, then the suite's own
/// order (priority, failures first, longest first). Tests may leave out of
/// line (a cache hit, a cancel), so entries are dropped lazily when they come
/// up. Tests are indices into the suite; the queue knows each one's expected
/// duration, to tell how much work waits and how big a shard to cut. Not
/// thread-safe: the coordinator holds its lock around every call.
class SuiteQueue {
 public:
  /// Results the guess is taken from at most (a uniform sample of all).
  static constexpr size_t kGuessSamples = 1024;

  SuiteQueue() = default;
  /// Tests 0..n-1, all queued, in `order` (each index once), with their
  /// expected durations; a negative one means the test has none of its own
  /// (no history): it is expected to take the guess, `guess_ms` until this
  /// run's own such tests tell better (ObserveGuessed).
  SuiteQueue(std::vector<int> order, std::vector<double> expected_ms,
             double guess_ms = 0);

  /// How many tests are queued, and their expected work.
  int size() const { return size_; }
  double expected_ms() const { return known_ms_ + guessed_ * guess_ms_; }
  bool Contains(int index) const { return queued_[index]; }
  /// A test's expected duration, queued or not.
  double ExpectedOf(int index) const {
    return Guessed(index) ? guess_ms_ : expected_ms_of_[index];
  }
  bool Guessed(int index) const { return expected_ms_of_[index] < 0; }
  double guess_ms() const { return guess_ms_; }
  /// A test without an expectation of its own took `wall_ms`, while
  /// `still_running` others like it are leased. The guess becomes the
  /// median of such tests of this run, finished and running, counting the
  /// running as longer than any that finished (the first to finish are the
  /// short ones: their median alone would cut shards far too big); it waits
  /// until half of them finished. So a suite without history is sized by
  /// its own tests after its first results, not by a default.
  void ObserveGuessed(double wall_ms, int64_t still_running);

  /// Takes the next test out of the queue; -1 when none is queued.
  int Pop();
  /// Back in line: ahead of everything with `first` (lost work, or a test
  /// popped but not taken), else after the tests given back before it (a
  /// retry). A test already queued is left where it is.
  void Return(int index, bool first);
  /// Takes a queued test out of line; false when it was not queued.
  bool Remove(int index);

  /// Expected work for one shard when `slots` slots share the queue: about
  /// half a slot's share of what is queued, so shards shrink as the suite
  /// drains and the last ones finish together (guided self-scheduling); at
  /// least kDispatchMsPerSlot a slot (or the first shards' size, when
  /// smaller), at most `max_ms`.
  double ShardTargetMs(int64_t slots, double max_ms) const;
  /// The floor of a shard, per slot of the fleet. A fleet refilling its
  /// slots with shards shorter than that asks for more dispatches a second
  /// than a coordinator serves: at 1,000 workers of 8 slots, the tail of
  /// short tests became shards of one 0.1 s test, 80,000 dispatches a second
  /// wanted, and slots stood idle by the thousand (BENCHMARKS.md, issue 19).
  /// 0.5 ms a slot caps the demand at 2,000 a second, which a coordinator
  /// on 2 cores beside its load generator serves with its pull p99 halved
  /// against 0.25 ms (4,000 a second); it adds at most about one shard to
  /// the makespan, 4 s at 8,000 slots, 40 ms at 80 (BENCHMARKS.md, issue 19,
  /// tenth round: 2% on 200,000 tests of 1 s at 8,000 slots).
  static constexpr double kDispatchMsPerSlot = 0.5;

 private:
  void Mark(int index, bool queued);

  std::vector<int> order_;
  size_t next_ = 0;                     // into order_
  std::deque<int> returned_;            // served before order_
  std::vector<bool> queued_;            // by index
  std::vector<double> expected_ms_of_;  // negative: guessed
  int size_ = 0;
  double known_ms_ = 0;      // queued tests' own expectations
  double submitted_ms_ = 0;  // expected_ms() when the suite was queued
  int guessed_ = 0;          // queued tests without one
  double guess_ms_ = 0;
  int64_t guessed_observed_ = 0;   // results of guessed tests, this run
  std::vector<double> sample_ms_;  // of those results' times
  uint64_t sample_rng_ = 0x9e3779b97f4a7c15;
};

}  // namespace testfleet
