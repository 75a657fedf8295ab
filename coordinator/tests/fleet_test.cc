#include "coordinator/fleet.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

const absl::Time kStart = absl::FromUnixSeconds(1'000'000);

v1::RegisterWorkerRequest Request(const std::string& name, int slots) {
  v1::RegisterWorkerRequest request;
  request.set_name(name);
  request.set_slots(slots);
  return request;
}

TEST(FleetTest, RegistersWithinItsLimitsAndCountsSlots) {
  Fleet fleet(/*max_workers=*/2, /*max_worker_slots=*/16);
  auto a = fleet.Register(Request("a", 8), "team-a", kStart, kStart);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ((*a)->info.worker_id(), "a#1");
  EXPECT_EQ((*a)->info.owner(), "team-a");
  auto b = fleet.Register(Request("", 1000), "", kStart, kStart);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->info.worker_id(), "worker#2");
  EXPECT_EQ((*b)->info.slots(), 16);  // clamped
  EXPECT_EQ(fleet.slots(), 24);
  auto full = fleet.Register(Request("c", 1), "", kStart, kStart);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(full.status().message()),
              ::testing::HasSubstr("--max-workers"));
  Fleet open(0, 16);
  EXPECT_EQ(open.Register(Request("bad\nname", 1), "", kStart, kStart)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(fleet.Find("a#1"), *a);
  EXPECT_EQ(fleet.Find("nobody#9"), nullptr);
}

TEST(FleetTest, ForgetsTheSilentWithTheirLeasesAndTheirSlots) {
  Fleet fleet(0, 16);
  Fleet::Worker* quiet = *fleet.Register(Request("q", 4), "", kStart, kStart);
  quiet->leases["lease-1"] = false;
  Fleet::Worker* alive =
      *fleet.Register(Request("l", 2), "", kStart + absl::Seconds(30), kStart);
  (void)alive;
  std::vector<Fleet::Worker> forgotten =
      fleet.ForgetSilent(kStart + absl::Seconds(10));
  ASSERT_EQ(forgotten.size(), 1u);
  EXPECT_EQ(forgotten[0].info.worker_id(), "q#1");
  EXPECT_EQ(forgotten[0].leases.count("lease-1"), 1u);
  EXPECT_EQ(fleet.size(), 1u);
  EXPECT_EQ(fleet.slots(), 2);
}

TEST(FleetTest, ReportIntervalGrowsWithTheFleetUpToItsCap) {
  Fleet fleet(0, 16);
  EXPECT_EQ(fleet.ReportInterval(1000, absl::Seconds(5)), absl::ZeroDuration());
  for (int i = 0; i < 2000; ++i)
    ASSERT_TRUE(fleet.Register(Request("w", 8), "", kStart, kStart).ok());
  EXPECT_EQ(fleet.ReportInterval(1000, absl::Seconds(5)), absl::Seconds(2));
  EXPECT_EQ(fleet.ReportInterval(100, absl::Seconds(5)), absl::Seconds(5));
  EXPECT_EQ(fleet.ReportInterval(0, absl::Seconds(5)), absl::ZeroDuration());
  // A rate that is not a number advises nothing rather than a NaN wait.
  EXPECT_EQ(fleet.ReportInterval(std::nan(""), absl::Seconds(5)),
            absl::ZeroDuration());
}

TEST(FleetTest, WaitingPullsExpireAtTheirDeadlineAndMarkTheirWorkerSeen) {
  Fleet fleet(0, 16);
  Fleet::Worker* worker = *fleet.Register(Request("w", 1), "", kStart, kStart);
  std::vector<std::string> answered;
  auto answer = [&](const std::string& name) {
    return
        [&answered, name](v1::PullWorkResponse) { answered.push_back(name); };
  };
  fleet.Wait({"w#1", 1, kStart + absl::Seconds(2), answer("short")});
  fleet.Wait({"w#1", 1, kStart + absl::Seconds(9), answer("long")});
  EXPECT_TRUE(fleet.TakeExpired(kStart + absl::Seconds(1)).empty());
  std::vector<Fleet::PullAnswer> due =
      fleet.TakeExpired(kStart + absl::Seconds(2));
  ASSERT_EQ(due.size(), 1u);
  due[0](v1::PullWorkResponse());
  EXPECT_THAT(answered, ElementsAre("short"));
  EXPECT_EQ(worker->last_seen, kStart + absl::Seconds(2));
  EXPECT_EQ(fleet.waiting(), 1u);
  EXPECT_EQ(fleet.TakeExpired(kStart + absl::Seconds(10)).size(), 1u);
  EXPECT_EQ(fleet.waiting(), 0u);
}

TEST(FleetTest, ServeOffersOldestFirstAndDropsOnlyTheAnswered) {
  Fleet fleet(0, 16);
  std::vector<uint64_t> ids;
  for (const char* worker : {"a#1", "b#2", "c#3"})
    ids.push_back(fleet.Wait({worker, 1, kStart, nullptr}));
  std::vector<std::string> offered;
  fleet.Serve([&](Fleet::WaitingPull& pull) {
    offered.push_back(pull.worker_id);
    return pull.worker_id != "b#2";
  });
  EXPECT_THAT(offered, ElementsAre("a#1", "b#2", "c#3"));
  EXPECT_EQ(fleet.waiting(), 1u);
  EXPECT_EQ(fleet.StopWaiting(ids[0]), nullptr);  // answered already
  bool told = false;
  const uint64_t d = fleet.Wait(
      {"d#4", 1, kStart, [&told](v1::PullWorkResponse) { told = true; }});
  Fleet::PullAnswer taken = fleet.StopWaiting(d);
  ASSERT_NE(taken, nullptr);
  taken(v1::PullWorkResponse());
  EXPECT_TRUE(told);
  EXPECT_EQ(fleet.TakeAllWaiting().size(), 1u);  // b#2
  EXPECT_EQ(fleet.waiting(), 0u);
}

}  // namespace
}  // namespace testfleet
