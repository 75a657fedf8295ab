#include "worker/result_spool.h"

#include <filesystem>

#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;

v1::ReportResultsRequest Batch(const std::string& first_test, int n = 1) {
  v1::ReportResultsRequest batch;
  for (int i = 0; i < n; ++i) {
    v1::ReportedResult* reported = batch.add_results();
    reported->set_suite_id("s-1");
    reported->mutable_result()->set_test_id(first_test + std::to_string(i));
  }
  return batch;
}

TEST(ResultSpoolTest, DeliversOldestFirstAndSurvivesReopen) {
  TestDir dir;
  {
    auto spool = ResultSpool::Open(dir.Join("spool"), 1 << 20);
    ASSERT_TRUE(spool.ok()) << spool.status();
    ASSERT_TRUE((*spool)->Append(Batch("a")).ok());
    ASSERT_TRUE((*spool)->Append(Batch("b")).ok());
    EXPECT_EQ((*spool)->batches(), 2u);
  }
  // A worker started later on the same folder finds both, in order.
  auto spool = ResultSpool::Open(dir.Join("spool"), 1 << 20);
  ASSERT_TRUE(spool.ok()) << spool.status();
  std::optional<ResultSpool::Entry> oldest = (*spool)->Oldest();
  ASSERT_TRUE(oldest.has_value());
  EXPECT_EQ(oldest->batch.results(0).result().test_id(), "a0");
  ASSERT_TRUE((*spool)->Remove(oldest->sequence).ok());
  ASSERT_TRUE((*spool)->Append(Batch("c")).ok());
  oldest = (*spool)->Oldest();
  ASSERT_TRUE(oldest.has_value());
  EXPECT_EQ(oldest->batch.results(0).result().test_id(), "b0");
  ASSERT_TRUE((*spool)->Remove(oldest->sequence).ok());
  EXPECT_EQ((*spool)->Oldest()->batch.results(0).result().test_id(), "c0");
}

TEST(ResultSpoolTest, RefusesBatchesBeyondItsBound) {
  TestDir dir;
  const int64_t one = static_cast<int64_t>(Batch("x", 10).ByteSizeLong());
  auto spool = ResultSpool::Open(dir.Join("spool"), one * 2);
  ASSERT_TRUE(spool.ok());
  ASSERT_TRUE((*spool)->Append(Batch("x", 10)).ok());
  ASSERT_TRUE((*spool)->Append(Batch("y", 10)).ok());
  absl::Status full = (*spool)->Append(Batch("z", 10));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("--spool-max-bytes"));
  ASSERT_TRUE((*spool)->Remove((*spool)->Oldest()->sequence).ok());
  EXPECT_TRUE((*spool)->Append(Batch("z", 10)).ok());
  EXPECT_EQ((*spool)->bytes(), one * 2);
}

TEST(ResultSpoolTest, SecondWorkerOnOneFolderIsRefused) {
  TestDir dir;
  auto first = ResultSpool::Open(dir.Join("spool"), 1 << 20);
  ASSERT_TRUE(first.ok());
  auto second = ResultSpool::Open(dir.Join("spool"), 1 << 20);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("own --spool-dir"));
}

TEST(ResultSpoolTest, TornAndCorruptFilesAreDroppedNotDelivered) {
  TestDir dir;
  // What a crash leaves: a write never renamed, and a damaged batch.
  dir.Write("spool/00000000000000000001.batch.tmp", "half a batch");
  dir.Write("spool/00000000000000000002.batch", "\xff\xff\xff not a proto");
  auto spool = ResultSpool::Open(dir.Join("spool"), 1 << 20);
  ASSERT_TRUE(spool.ok());
  EXPECT_FALSE(std::filesystem::exists(
      dir.Join("spool/00000000000000000001.batch.tmp")));
  EXPECT_FALSE((*spool)->Oldest().has_value());
  EXPECT_EQ((*spool)->bytes(), 0);
  // New batches do not reuse the dropped one's number.
  ASSERT_TRUE((*spool)->Append(Batch("n")).ok());
  EXPECT_GT((*spool)->Oldest()->sequence, 2u);
}

TEST(ResultSpoolTest, UnwritableFolderIsAClearError) {
  TestDir dir;
  dir.Write("file", "a file where the spool folder should go");
  auto spool = ResultSpool::Open(dir.Join("file/spool"), 1 << 20);
  EXPECT_FALSE(spool.ok());
  EXPECT_THAT(spool.status().message(), HasSubstr("--spool-dir"));
}

// The test ids of every part, in order, and each part's size.
std::vector<std::string> IdsOf(
    const std::vector<v1::ReportResultsRequest>& parts,
    std::vector<int>* sizes) {
  std::vector<std::string> ids;
  for (const v1::ReportResultsRequest& part : parts) {
    sizes->push_back(part.results_size());
    for (const v1::ReportedResult& reported : part.results())
      ids.push_back(reported.result().test_id());
  }
  return ids;
}

TEST(SplitReportTest, PartsHoldAtMostTheCountInOrder) {
  v1::ReportResultsRequest batch = Batch("t", 2500);
  batch.set_worker_id("w-1");
  const std::vector<v1::ReportResultsRequest> parts =
      SplitReport(batch, 1000, 64 << 20);
  std::vector<int> sizes;
  const std::vector<std::string> ids = IdsOf(parts, &sizes);
  EXPECT_EQ(sizes, (std::vector<int>{1000, 1000, 500}));
  ASSERT_EQ(ids.size(), 2500u);
  for (int i = 0; i < 2500; ++i) EXPECT_EQ(ids[i], "t" + std::to_string(i));
  for (const auto& part : parts) EXPECT_EQ(part.worker_id(), "w-1");
  EXPECT_TRUE(SplitReport(v1::ReportResultsRequest(), 1000, 1 << 20).empty());
}

TEST(SplitReportTest, PartsStayUnderTheByteLimitUnlessOneResultIsLarger) {
  v1::ReportResultsRequest batch = Batch("t", 5);
  // 40 KiB of output each, and one of 300 KiB.
  for (int i = 0; i < 5; ++i) {
    batch.mutable_results(i)->mutable_result()->set_stdout_tail(
        std::string(i == 2 ? 300 << 10 : 40 << 10, 'x'));
  }
  const size_t limit = 100 << 10;
  const std::vector<v1::ReportResultsRequest> parts =
      SplitReport(batch, 1000, limit);
  std::vector<int> sizes;
  const std::vector<std::string> ids = IdsOf(parts, &sizes);
  // Two of 40 KiB fit; the large one goes alone.
  EXPECT_EQ(sizes, (std::vector<int>{2, 1, 2}));
  EXPECT_EQ(ids, (std::vector<std::string>{"t0", "t1", "t2", "t3", "t4"}));
  for (const auto& part : parts) {
    if (part.results_size() > 1) {
      EXPECT_LE(part.ByteSizeLong(), limit);
    }
  }
}

}  // namespace
}  // namespace testfleet
