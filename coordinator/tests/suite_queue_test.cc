#include "coordinator/suite_queue.h"

#include <vector>

#include "gtest/gtest.h"

namespace testfleet {
namespace {

std::vector<int> Drain(SuiteQueue& queue) {
  std::vector<int> popped;
  for (int index = queue.Pop(); index >= 0; index = queue.Pop())
    popped.push_back(index);
  return popped;
}

TEST(SuiteQueueTest, ServesItsOrderAndCountsTheWorkLeft) {
  SuiteQueue queue({2, 0, 1}, {100, 10, 1000});
  EXPECT_EQ(queue.size(), 3);
  EXPECT_DOUBLE_EQ(queue.expected_ms(), 1110);
  EXPECT_EQ(queue.Pop(), 2);
  EXPECT_FALSE(queue.Contains(2));
  EXPECT_EQ(queue.size(), 2);
  EXPECT_DOUBLE_EQ(queue.expected_ms(), 110);
  EXPECT_EQ(Drain(queue), (std::vector<int>{0, 1}));
  EXPECT_EQ(queue.size(), 0);
  EXPECT_EQ(queue.expected_ms(), 0);
  EXPECT_EQ(queue.Pop(), -1);
}

TEST(SuiteQueueTest, LostWorkGoesFirstAndRetriesAfterOtherReturns) {
  SuiteQueue queue({0, 1, 2, 3, 4}, {1, 1, 1, 1, 1});
  ASSERT_EQ(queue.Pop(), 0);
  ASSERT_EQ(queue.Pop(), 1);
  ASSERT_EQ(queue.Pop(), 2);
  queue.Return(1, /*first=*/false);  // a retry
  queue.Return(2, /*first=*/false);  // another, after it
  queue.Return(0, /*first=*/true);   // lost with a worker: ahead of all
  queue.Return(0, /*first=*/true);   // already queued: stays where it is
  EXPECT_EQ(queue.size(), 5);
  EXPECT_EQ(Drain(queue), (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(SuiteQueueTest, TestsLeavingOutOfLineAreSkipped) {
  SuiteQueue queue({0, 1, 2, 3}, {5, 6, 7, 8});
  EXPECT_TRUE(queue.Remove(1));   // a cache hit
  EXPECT_FALSE(queue.Remove(1));  // not queued any more
  EXPECT_EQ(queue.size(), 3);
  EXPECT_DOUBLE_EQ(queue.expected_ms(), 20);
  ASSERT_EQ(queue.Pop(), 0);
  queue.Return(0, /*first=*/true);
  EXPECT_TRUE(queue.Remove(0));  // a late result for the returned test
  // Removed, then given back: served once, from where it was given back.
  queue.Return(1, /*first=*/true);
  EXPECT_EQ(Drain(queue), (std::vector<int>{1, 2, 3}));
}

TEST(SuiteQueueTest, ShardsShrinkAsTheQueueDrains) {
  SuiteQueue queue({0, 1, 2, 3}, {4000, 4000, 4000, 4000});
  // 16 s queued over 2 slots: half a slot's share is 4 s.
  EXPECT_DOUBLE_EQ(queue.ShardTargetMs(2, 10'000), 4000);
  // Capped, and a fleet with no slots counts as one.
  EXPECT_DOUBLE_EQ(queue.ShardTargetMs(0, 3000), 3000);
  queue.Pop();
  queue.Pop();
  queue.Pop();
  EXPECT_DOUBLE_EQ(queue.ShardTargetMs(2, 10'000), 1000);
  // Too small a suite for a floor's worth a slot on 8,000 slots: its first
  // shards' size, 16 s / 16,000.
  EXPECT_DOUBLE_EQ(queue.ShardTargetMs(8000, 10'000), 1);
}

TEST(SuiteQueueTest, TheLastShardsOfALargeFleetKeepAFloor) {
  // 1,000 tests of 80 s on 8,000 slots: first shards of 5 s.
  std::vector<int> order(1000);
  for (int i = 0; i < 1000; ++i) order[i] = i;
  SuiteQueue queue(order, std::vector<double>(1000, 80'000));
  EXPECT_DOUBLE_EQ(queue.ShardTargetMs(8000, 10'000), 5000);
  for (int i = 0; i < 999; ++i) queue.Pop();
  // 80 s left would be shards of 5 ms: the floor, 8,000 x 0.5 ms.
  EXPECT_DOUBLE_EQ(queue.ShardTargetMs(8000, 10'000), 4000);
  EXPECT_DOUBLE_EQ(queue.ShardTargetMs(8000, 1500), 1500);
}

TEST(SuiteQueueTest, TestsWithoutHistoryTakeTheMedianOfThisRunsOwn) {
  // Tests 1 to 4 have no expectation of their own: they take the guess.
  SuiteQueue queue({0, 1, 2, 3, 4}, {500, -1, -1, -1, -1}, /*guess_ms=*/1000);
  EXPECT_TRUE(queue.Guessed(1));
  EXPECT_FALSE(queue.Guessed(0));
  EXPECT_DOUBLE_EQ(queue.expected_ms(), 4500);
  for (int i = 0; i < 3; ++i) queue.Pop();  // 0, 1, 2 leased
  // One of the two guessed tests leased finished: its median is not known
  // yet (the other may take far longer).
  queue.ObserveGuessed(4, /*still_running=*/1);
  EXPECT_DOUBLE_EQ(queue.guess_ms(), 1000);
  // Both finished: the median (the upper one).
  queue.ObserveGuessed(6, /*still_running=*/0);
  EXPECT_DOUBLE_EQ(queue.guess_ms(), 6);
  EXPECT_DOUBLE_EQ(queue.ExpectedOf(3), 6);
  EXPECT_DOUBLE_EQ(queue.ExpectedOf(0), 500);
  EXPECT_DOUBLE_EQ(queue.expected_ms(), 12);  // tests 3 and 4 queued
}

TEST(SuiteQueueTest, TheFirstToFinishDoNotMakeTheGuessShort) {
  // 100 guessed tests leased at once; the short ones finish first.
  std::vector<int> order(100);
  for (int i = 0; i < 100; ++i) order[i] = i;
  SuiteQueue queue(order, std::vector<double>(100, -1), /*guess_ms=*/1000);
  int running = 100;
  for (int i = 0; i < 50; ++i) queue.ObserveGuessed(5, --running);
  EXPECT_DOUBLE_EQ(queue.guess_ms(), 1000);  // half of them still running
  // The 51st: the (upper) median of the 100.
  queue.ObserveGuessed(3000, --running);
  EXPECT_DOUBLE_EQ(queue.guess_ms(), 3000);
  // Given back unfinished (a lost lease), a test no longer counts as
  // running: 60 of 90 finished, the median is a finished one.
  running -= 10;
  for (int i = 0; i < 9; ++i) queue.ObserveGuessed(5, --running);
  EXPECT_DOUBLE_EQ(queue.guess_ms(), 5);
}

TEST(SuiteQueueTest, TheGuessFollowsASampleOfManyResults) {
  const int n = 20000;
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  SuiteQueue queue(order, std::vector<double>(n, -1), /*guess_ms=*/1000);
  // Each test is leased and finishes; one in four takes 100 ms, the rest
  // 10 ms, so the median is 10 whatever the sample holds.
  for (int i = 0; i < n; ++i) {
    queue.Pop();
    queue.ObserveGuessed(i % 4 == 0 ? 100 : 10, /*still_running=*/0);
  }
  EXPECT_DOUBLE_EQ(queue.guess_ms(), 10);
  // No test is guessed to take nothing: the last shards still shrink.
  SuiteQueue instant({0}, {-1}, /*guess_ms=*/1000);
  instant.Pop();
  instant.ObserveGuessed(0, /*still_running=*/0);
  EXPECT_DOUBLE_EQ(instant.guess_ms(), 1);
}

}  // namespace
}  // namespace testfleet
