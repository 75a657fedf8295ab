#include "common/disk_space.h"

#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;

TEST(DiskSpaceGuardTest, RefusesBelowTheReserveAndRecoversAtOnce) {
  FakeClock clock;
  int64_t free_bytes = 500 << 20;
  int reads = 0;
  DiskSpaceGuard guard(
      "/data", 100 << 20, &clock,
      [&](const std::string&) -> absl::StatusOr<int64_t> {
        ++reads;
        return free_bytes;
      },
      absl::Milliseconds(100));
  EXPECT_TRUE(guard.Check().ok());
  EXPECT_TRUE(guard.Check().ok());
  EXPECT_EQ(reads, 1);  // above the reserve: read again only after 100 ms

  free_bytes = 50 << 20;
  clock.Advance(absl::Milliseconds(100));
  absl::Status full = guard.Check();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(),
              HasSubstr("the disk holding /data is nearly full"));
  EXPECT_THAT(full.message(), HasSubstr("50 MiB free, 100 MiB kept"));
  EXPECT_THAT(full.message(), HasSubstr("--min-free-disk"));

  free_bytes = 400 << 20;  // space returns: the next write goes through
  EXPECT_TRUE(guard.Check().ok());
  EXPECT_EQ(reads, 3);
}

TEST(DiskSpaceGuardTest, CheckNowIgnoresARecentReading) {
  FakeClock clock;
  int64_t free_bytes = 500 << 20;
  DiskSpaceGuard guard(
      "/data", 100 << 20, &clock,
      [&](const std::string&) -> absl::StatusOr<int64_t> { return free_bytes; },
      absl::Milliseconds(100));
  EXPECT_TRUE(guard.Check().ok());
  free_bytes = 50 << 20;  // the disk fills within the recheck period
  EXPECT_TRUE(guard.Check().ok());
  EXPECT_EQ(guard.CheckNow().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(guard.Check().code(), absl::StatusCode::kResourceExhausted);
}

TEST(DiskSpaceGuardTest, ZeroReserveNeverRefuses) {
  DiskSpaceGuard guard(
      "/data", 0, RealClock::Get(),
      [](const std::string&) -> absl::StatusOr<int64_t> { return 0; });
  EXPECT_TRUE(guard.Check().ok());
}

TEST(DiskSpaceGuardTest, ReadsTheRealFilesystem) {
  TestDir dir;
  absl::StatusOr<int64_t> free = FreeDiskBytes(dir.path());
  ASSERT_TRUE(free.ok()) << free.status();
  EXPECT_GT(*free, 0);
  EXPECT_FALSE(FreeDiskBytes(dir.Join("missing/dir")).ok());
}

}  // namespace
}  // namespace testfleet
