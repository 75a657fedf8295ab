#include "coordinator/group_commit.h"

#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

using ::testing::ElementsAre;

struct Batch {
  uint64_t ticket = 0;
};

// Records every group written, as its tickets; the first write can be held
// open so later commits queue up behind it.
class GroupCommitTest : public ::testing::Test {
 protected:
  GroupCommit<Batch> committer_{[this](const std::vector<Batch*>& group) {
    if (hold_first_ && groups_written_++ == 0) {
      first_started_.Notify();
      release_.WaitForNotification();
    }
    std::vector<uint64_t> tickets;
    for (const Batch* batch : group) tickets.push_back(batch->ticket);
    absl::MutexLock lock(&mu_);
    groups_.push_back(tickets);
  }};
  // Waits (bounded) until `n` batches queue behind the write in progress.
  bool QueuedReaches(size_t n) {
    for (int i = 0; i < 5000 && committer_.queued() < n; ++i)
      absl::SleepFor(absl::Milliseconds(1));
    return committer_.queued() == n;
  }
  std::vector<std::vector<uint64_t>> Groups() {
    absl::MutexLock lock(&mu_);
    return groups_;
  }

  bool hold_first_ = false;
  int groups_written_ = 0;  // by the writer only: one write at a time
  absl::Notification first_started_, release_;
  absl::Mutex mu_;
  std::vector<std::vector<uint64_t>> groups_ ABSL_GUARDED_BY(mu_);
};

TEST_F(GroupCommitTest, ACommitAloneIsWrittenAloneBeforeItReturns) {
  Batch first{1}, second{2};
  committer_.Commit(1, &first);
  EXPECT_THAT(Groups(), ElementsAre(ElementsAre(1)));
  committer_.Commit(2, &second);
  EXPECT_THAT(Groups(), ElementsAre(ElementsAre(1), ElementsAre(2)));
  EXPECT_EQ(committer_.queued(), 0u);
}

TEST_F(GroupCommitTest,
       CommitsThatQueueDuringAWriteAreWrittenAsOneInTicketOrder) {
  hold_first_ = true;
  Batch batches[5] = {{1}, {2}, {3}, {4}, {5}};
  std::vector<std::thread> threads;
  threads.emplace_back([&] { committer_.Commit(1, &batches[0]); });
  first_started_.WaitForNotification();
  // Out of order, while ticket 1 is being written.
  for (int i : {4, 2, 3}) {
    threads.emplace_back([&, i] { committer_.Commit(i + 1, &batches[i]); });
    ASSERT_TRUE(QueuedReaches(threads.size() - 1));
  }
  threads.emplace_back([&] { committer_.Commit(2, &batches[1]); });
  ASSERT_TRUE(QueuedReaches(4));
  release_.Notify();
  for (std::thread& t : threads) t.join();
  EXPECT_THAT(Groups(), ElementsAre(ElementsAre(1), ElementsAre(2, 3, 4, 5)));
}

TEST_F(GroupCommitTest, ALaterTicketWaitsForTheEarlierOne) {
  Batch early{1}, late{2};
  absl::Notification late_returned;
  std::thread waiter([&] {
    committer_.Commit(2, &late);
    late_returned.Notify();
  });
  ASSERT_TRUE(QueuedReaches(1));
  EXPECT_FALSE(
      late_returned.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  EXPECT_TRUE(Groups().empty());
  committer_.Commit(1, &early);
  waiter.join();
  EXPECT_THAT(Groups(), ElementsAre(ElementsAre(1, 2)));
}

TEST_F(GroupCommitTest, CommitThenReturnsAtOnceAndIsToldAfterTheWrite) {
  hold_first_ = true;
  Batch first{1}, second{2};
  absl::Notification first_told, second_told;
  committer_.CommitThen(1, &first, [&] {
    EXPECT_THAT(Groups(), ElementsAre(ElementsAre(1)));
    first_told.Notify();
  });
  first_started_.WaitForNotification();
  // Handed over while the first write is held open: nobody waits for it.
  committer_.CommitThen(2, &second, [&] { second_told.Notify(); });
  EXPECT_FALSE(first_told.HasBeenNotified());
  EXPECT_FALSE(second_told.HasBeenNotified());
  release_.Notify();
  ASSERT_TRUE(second_told.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_TRUE(first_told.HasBeenNotified());
  EXPECT_THAT(Groups(), ElementsAre(ElementsAre(1), ElementsAre(2)));
}

TEST(GroupCommitStopTest, WhatWasHandedOverIsWrittenBeforeTheDestructorEnds) {
  std::vector<uint64_t> written;
  int told = 0;
  Batch batches[3] = {{1}, {2}, {3}};
  {
    GroupCommit<Batch> committer([&](const std::vector<Batch*>& group) {
      for (const Batch* batch : group) written.push_back(batch->ticket);
    });
    // Out of order, and the destructor may start before any is written.
    committer.CommitThen(3, &batches[2], [&] { ++told; });
    committer.CommitThen(2, &batches[1], [&] { ++told; });
    committer.CommitThen(1, &batches[0], [&] { ++told; });
  }
  EXPECT_THAT(written, ElementsAre(1, 2, 3));
  EXPECT_EQ(told, 3);
}

}  // namespace
}  // namespace testfleet
