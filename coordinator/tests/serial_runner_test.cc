#include "coordinator/serial_runner.h"

#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

using ::testing::ElementsAre;

TEST(SerialRunnerTest, RunsTasksOneAtATimeInTheOrderHandedOver) {
  absl::Mutex mu;
  std::vector<int> ran;
  int running = 0, most_running = 0;
  absl::Notification started, release;
  {
    SerialRunner runner;
    // The first holds the thread, so the rest queue up behind it.
    runner.Run([&] {
      started.Notify();
      release.WaitForNotification();
    });
    started.WaitForNotification();
    for (int i = 0; i < 100; ++i) {
      runner.Run([&, i] {
        {
          absl::MutexLock lock(&mu);
          most_running = std::max(most_running, ++running);
        }
        absl::SleepFor(absl::Microseconds(10));
        absl::MutexLock lock(&mu);
        --running;
        ran.push_back(i);
      });
    }
    EXPECT_EQ(runner.queued(), 100u);
    release.Notify();
  }  // the destructor runs what is queued
  absl::MutexLock lock(&mu);
  ASSERT_EQ(ran.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(ran[i], i);
  EXPECT_EQ(most_running, 1);
}

TEST(SerialRunnerTest, TasksHandedOverFromManyThreadsAllRunOnItsThread) {
  absl::Mutex mu;
  std::vector<std::thread::id> ran_on;
  {
    SerialRunner runner;
    std::vector<std::thread> senders;
    for (int t = 0; t < 8; ++t) {
      senders.emplace_back([&] {
        for (int i = 0; i < 50; ++i) {
          runner.Run([&] {
            absl::MutexLock lock(&mu);
            ran_on.push_back(std::this_thread::get_id());
          });
        }
      });
    }
    for (std::thread& sender : senders) sender.join();
  }
  absl::MutexLock lock(&mu);
  ASSERT_EQ(ran_on.size(), 400u);
  for (const std::thread::id& id : ran_on) {
    EXPECT_EQ(id, ran_on.front());
    EXPECT_NE(id, std::this_thread::get_id());
  }
}

TEST(SerialRunnerTest, ATaskMayHandOverAnother) {
  std::vector<int> ran;  // only the runner's thread touches it
  {
    SerialRunner runner;
    absl::Notification first_ran;
    runner.Run([&] {
      ran.push_back(1);
      runner.Run([&] { ran.push_back(2); });
      first_ran.Notify();
    });
    first_ran.WaitForNotification();
  }
  EXPECT_THAT(ran, ElementsAre(1, 2));
}

TEST(SerialRunnerTest, PastItsBudgetATaskComesBackForTheCallerToRun) {
  absl::Notification started, release;
  std::vector<int> ran;  // only the runner's thread touches it
  {
    SerialRunner runner(/*budget=*/100);
    // Alone, a task is taken whatever it costs; it holds its cost while it
    // runs.
    EXPECT_FALSE(runner
                     .RunWithin(
                         [&] {
                           started.Notify();
                           release.WaitForNotification();
                           ran.push_back(0);
                         },
                         150)
                     .has_value());
    started.WaitForNotification();
    EXPECT_EQ(runner.held(), 150);
    std::optional<SerialRunner::Task> refused =
        runner.RunWithin([&] { ran.push_back(1); }, 10);
    ASSERT_TRUE(refused.has_value());
    bool ran_here = false;
    std::optional<SerialRunner::Task> also_refused =
        runner.RunWithin([&] { ran_here = true; }, 10);
    ASSERT_TRUE(also_refused.has_value());
    std::move(also_refused.value())();
    EXPECT_TRUE(ran_here);  // on this thread, at once
    // Run takes a task whatever the queue holds.
    runner.Run([&] { ran.push_back(4); });
    EXPECT_EQ(runner.queued(), 1u);
    release.Notify();
    // Once the first has run, its cost is given back and tasks are taken
    // again, up to the budget.
    for (int i = 0; i < 5000 && runner.held() > 0; ++i)
      absl::SleepFor(absl::Milliseconds(1));
    EXPECT_EQ(runner.held(), 0);
    EXPECT_FALSE(runner.RunWithin([&] { ran.push_back(2); }, 60).has_value());
    EXPECT_FALSE(runner.RunWithin([&] { ran.push_back(3); }, 40).has_value());
  }
  EXPECT_THAT(ran, ElementsAre(0, 4, 2, 3));
}

}  // namespace
}  // namespace testfleet
