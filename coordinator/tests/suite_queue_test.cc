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
}

}  // namespace
}  // namespace testfleet
