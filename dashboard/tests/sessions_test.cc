#include "dashboard/sessions.h"

#include "common/clock.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

TEST(SessionStoreTest, ASessionHoldsItsTokenUntilItExpiresOrIsRemoved) {
  FakeClock clock;
  SessionStore sessions(&clock, absl::Hours(1));
  const std::string id = sessions.Create("secret-token");
  ASSERT_EQ(id.size(), 64u);
  std::optional<SessionStore::Session> found = sessions.Find(id);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->token, "secret-token");
  EXPECT_EQ(found->csrf.size(), 64u);
  EXPECT_FALSE(sessions.Find(id + "0").has_value());
  EXPECT_FALSE(sessions.Find("").has_value());
  clock.Advance(absl::Minutes(59));
  EXPECT_TRUE(sessions.Find(id).has_value());
  clock.Advance(absl::Minutes(2));
  EXPECT_FALSE(sessions.Find(id).has_value());

  const std::string other = sessions.Create("secret-token");
  EXPECT_NE(other, id);
  sessions.Remove(other);
  EXPECT_FALSE(sessions.Find(other).has_value());
}

TEST(SessionStoreTest, EachSessionHasItsOwnCsrfToken) {
  FakeClock clock;
  SessionStore sessions(&clock);
  const auto a = sessions.Find(sessions.Create("t"));
  const auto b = sessions.Find(sessions.Create("t"));
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->csrf, b->csrf);
}

TEST(SessionStoreTest, AFullStoreDropsTheSessionClosestToExpiry) {
  FakeClock clock;
  SessionStore sessions(&clock, absl::Hours(1), /*max_sessions=*/2);
  const std::string first = sessions.Create("a");
  clock.Advance(absl::Minutes(1));
  const std::string second = sessions.Create("b");
  const std::string third = sessions.Create("c");
  EXPECT_FALSE(sessions.Find(first).has_value());
  EXPECT_TRUE(sessions.Find(second).has_value());
  EXPECT_TRUE(sessions.Find(third).has_value());
}

}  // namespace
}  // namespace testfleet
