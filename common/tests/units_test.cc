#include "common/units.h"

#include "gtest/gtest.h"

namespace testfleet {
namespace {

TEST(UnitsTest, ParsesDurations) {
  EXPECT_EQ(*ParseDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDuration("30s"), absl::Seconds(30));
  EXPECT_EQ(*ParseDuration("1h"), absl::Hours(1));
  EXPECT_EQ(*ParseDuration("1m30s"), absl::Seconds(90));
  EXPECT_EQ(*ParseDuration("0"), absl::ZeroDuration());
}

TEST(UnitsTest, RejectsBadDurationsWithTheReason) {
  auto negative = ParseDuration("-1s");
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.status().message(),
            "\"-1s\" is not a duration: it is negative (use e.g. 500ms, 30s, "
            "5m, 1h, 1m30s)");
  EXPECT_FALSE(ParseDuration("10").ok());
  EXPECT_FALSE(ParseDuration("").ok());
  EXPECT_FALSE(ParseDuration("fast").ok());
  EXPECT_FALSE(ParseDuration("inf").ok());
}

TEST(UnitsTest, ParsesSizes) {
  EXPECT_EQ(*ParseSize("512MiB"), 512LL << 20);
  EXPECT_EQ(*ParseSize("1GiB"), 1LL << 30);
  EXPECT_EQ(*ParseSize("64KiB"), 64 * 1024);
  EXPECT_EQ(*ParseSize("1.5GB"), 1500000000);
  EXPECT_EQ(*ParseSize("4096"), 4096);
  EXPECT_EQ(*ParseSize("2 mib"), 2LL << 20);
}

TEST(UnitsTest, RejectsBadSizes) {
  EXPECT_NE(ParseSize("-1MiB").status().message().find("negative"),
            std::string::npos);
  EXPECT_NE(ParseSize("12 parsecs").status().message().find("unknown unit"),
            std::string::npos);
  EXPECT_NE(ParseSize("99999999TiB").status().message().find("too large"),
            std::string::npos);
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("1.2.3MiB").ok());
}

TEST(UnitsTest, FormatsSizes) {
  EXPECT_EQ(FormatSize(512), "512 B");
  EXPECT_EQ(FormatSize(3 << 20), "3.0 MiB");
  EXPECT_EQ(FormatSize(1536LL << 20), "1.5 GiB");
}

}  // namespace
}  // namespace testfleet
