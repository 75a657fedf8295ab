#include "common/security.h"

#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;

constexpr char kAlice[] = "Bearer alice-0123456789abcdef";
constexpr char kRunner[] = "Bearer runner-0123456789abcdef";
constexpr char kDev[] = "Bearer dev-0123456789abcdef";
constexpr char kLoopback[] = "ipv4:127.0.0.1:40000";

class TokenAuthorityTest : public ::testing::Test {
 protected:
  TokenAuthorityTest() : clock_(absl::FromUnixSeconds(1790000000)) {
    dir_.Write("tokens",
               "# token name roles expires\n"
               "alice-0123456789abcdef  alice   submit\n"
               "runner-0123456789abcdef ci      worker\n"
               "dev-0123456789abcdef    laptop  cache-read   2027-01-01\n"
               "root-0123456789abcdef   ops     admin\n");
  }
  std::unique_ptr<TokenAuthority> Load() {
    // value() fails the test with the status rather than return a null.
    return TokenAuthority::Load(dir_.Join("tokens"), &clock_).value();
  }
  TestDir dir_;
  FakeClock clock_;
};

TEST_F(TokenAuthorityTest, RolesGrantWhatTheyInclude) {
  auto authority = Load();
  auto alice = authority->Authorize(kAlice, kLoopback, false, Role::kSubmit);
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(alice->name, "alice");
  // A worker reads and writes the cache, but does not submit.
  EXPECT_TRUE(
      authority->Authorize(kRunner, kLoopback, false, Role::kCacheWrite).ok());
  auto submit = authority->Authorize(kRunner, kLoopback, false, Role::kSubmit);
  EXPECT_EQ(submit.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(submit.status().message(),
              HasSubstr("the token of ci (worker,cache-read,cache-write) "
                        "lacks the submit role"));
  // A developer machine reads the shared cache and never writes it.
  EXPECT_TRUE(
      authority->Authorize(kDev, kLoopback, false, Role::kCacheRead).ok());
  EXPECT_EQ(authority->Authorize(kDev, kLoopback, false, Role::kCacheWrite)
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(authority
                  ->Authorize("Bearer root-0123456789abcdef", kLoopback, false,
                              Role::kWorker)
                  .ok());
}

TEST_F(TokenAuthorityTest, MissingUnknownAndExpiredTokensAreUnauthenticated) {
  auto authority = Load();
  auto missing =
      authority->Authorize(std::nullopt, kLoopback, false, Role::kSubmit);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(missing.status().message(), HasSubstr("--token-file"));
  auto unknown = authority->Authorize("Bearer nobody-0123456789abcdef",
                                      kLoopback, false, Role::kSubmit);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown token"));
  clock_.Set(absl::FromUnixSeconds(1830000000));  // 2027-12
  auto expired = authority->Authorize(kDev, kLoopback, false, Role::kCacheRead);
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(expired.status().message(),
              HasSubstr("the token of laptop expired on 2027-01-01"));
}

TEST_F(TokenAuthorityTest, TokensOverPlaintextOnlyFromThisMachine) {
  auto authority = Load();
  auto remote =
      authority->Authorize(kAlice, "ipv4:10.1.2.3:5000", false, Role::kSubmit);
  EXPECT_EQ(remote.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(remote.status().message(), HasSubstr("refused over plaintext"));
  EXPECT_TRUE(
      authority->Authorize(kAlice, "ipv4:10.1.2.3:5000", true, Role::kSubmit)
          .ok());
  EXPECT_TRUE(
      authority->Authorize(kAlice, "ipv6:[::1]:5000", false, Role::kSubmit)
          .ok());
}

TEST_F(TokenAuthorityTest, BadFileIsRefusedAndReloadKeepsTheOldTokens) {
  auto authority = Load();
  dir_.Write("tokens", "alice-0123456789abcdef alice superuser\n");
  absl::Status reloaded = authority->Reload();
  EXPECT_THAT(reloaded.message(),
              HasSubstr("tokens line 1: unknown role \"superuser\""));
  EXPECT_TRUE(
      authority->Authorize(kRunner, kLoopback, false, Role::kWorker).ok());
  dir_.Write("tokens", "short alice submit\n");
  EXPECT_THAT(authority->Reload().message(),
              HasSubstr("shorter than 16 characters"));
  dir_.Write("tokens", "alice-0123456789abcdef alice submit\n");
  ASSERT_TRUE(authority->Reload().ok());
  EXPECT_EQ(authority->Authorize(kRunner, kLoopback, false, Role::kWorker)
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);  // revoked by the reload
}

TEST(TokenAuthorityOpenTest, WithoutATokenFileEveryoneIsLetIn) {
  TokenAuthority open;
  auto anyone =
      open.Authorize(std::nullopt, "ipv4:10.0.0.1:1", false, Role::kAdmin);
  ASSERT_TRUE(anyone.ok());
  EXPECT_TRUE(anyone->anonymous());
}

TEST(LoopbackTest, RecognisesLocalAddressesAndPeers) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:7070"));
  EXPECT_TRUE(IsLoopbackAddress("127.9.8.7:7070"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:7070"));
  EXPECT_TRUE(IsLoopbackAddress("ipv6:[::1]:7070"));
  EXPECT_TRUE(IsLoopbackAddress("ipv4:127.0.0.1:40000"));
  EXPECT_TRUE(IsLoopbackAddress("dns:///localhost:7070"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.5:7070"));
  EXPECT_FALSE(IsLoopbackAddress("coord.example:7070"));
  EXPECT_FALSE(IsLoopbackAddress("localhost.evil.example:7070"));
}

TEST(LoopbackTest, ANameIsJudgedByWhatItResolvesTo) {
  // Spelled like loopback, but a name (that resolves nowhere here).
  EXPECT_FALSE(IsLoopbackAddress("127.attacker.example:7070"));
  EXPECT_FALSE(IsLoopbackAddress("dns:127.attacker.example:7070"));
  EXPECT_FALSE(IsLoopbackAddress("[::ffff:10.0.0.1]:7070"));
  EXPECT_TRUE(IsLoopbackAddress("[::ffff:127.0.0.1]:7070"));
}

TEST(ConstantTimeEqualsTest, ComparesBytes) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

TEST_F(TokenAuthorityTest, ATokenListedTwiceIsAnErrorNamingBothLines) {
  dir_.Write("tokens",
             "alice-0123456789abcdef  alice   submit\n"
             "bob-0123456789abcdefgh  bob     submit\n"
             "alice-0123456789abcdef  mallory admin\n");
  auto loaded = TokenAuthority::Load(dir_.Join("tokens"), &clock_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()),
              HasSubstr("line 3: the token of mallory is also on line 1"));
}

TEST_F(TokenAuthorityTest, WindowsLineEndsGiveTheRolesWritten) {
  dir_.Write("tokens", "alice-0123456789abcdef alice submit\r\n");
  auto authority = Load();
  ASSERT_NE(authority, nullptr);
  EXPECT_TRUE(
      authority->Authorize(kAlice, kLoopback, false, Role::kSubmit).ok());
}

TEST_F(TokenAuthorityTest, AnEmptyFileLoadsAndLetsNobodyIn) {
  dir_.Write("tokens", "# nobody yet\n");
  auto authority = Load();
  ASSERT_NE(authority, nullptr);
  EXPECT_EQ(authority->Authorize(kAlice, kLoopback, false, Role::kSubmit)
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(TokenAuthorityTest, ViewReadsButNeitherSubmitsNorWorks) {
  dir_.Write("tokens", "view-0123456789abcdefg carol view\n");
  auto authority = Load();
  ASSERT_NE(authority, nullptr);
  const char kView[] = "Bearer view-0123456789abcdefg";
  auto carol = authority->Authorize(kView, kLoopback, false, Role::kView);
  ASSERT_TRUE(carol.ok()) << carol.status();
  EXPECT_TRUE(carol->CanRead("alice"));
  EXPECT_FALSE(carol->CanChange("alice"));
  EXPECT_EQ(authority->Authorize(kView, kLoopback, false, Role::kSubmit)
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace testfleet
