#include "cache/cache_client.h"

#include "absl/strings/str_cat.h"
#include "cache/cache_service.h"
#include "cache/tests/fake_cache_client.h"
#include "common/digest.h"
#include "common/grpc_util.h"
#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

v1::CachedResult ResultOf(const std::string& id) {
  v1::CachedResult value;
  value.mutable_result()->set_test_id(id);
  return value;
}

TEST(TieredCacheClientTest, LaterTierHitFillsEarlierTiers) {
  FakeCacheClient local, shared;
  ASSERT_TRUE(shared.Put({{"k1", ResultOf("t1")}}).ok());
  auto tiered = NewTieredCacheClient({&local, &shared});
  auto results = tiered->Lookup({"k1", "k2"});
  ASSERT_TRUE(results.ok());
  ASSERT_TRUE((*results)[0].has_value());
  EXPECT_EQ((*results)[0]->result().test_id(), "t1");
  EXPECT_FALSE((*results)[1].has_value());
  EXPECT_EQ(local.size(), 1u);  // filled from the shared tier
}

TEST(TieredCacheClientTest, FailingTierIsAMissNotAnError) {
  FakeCacheClient local, shared;
  shared.FailWith(absl::UnavailableError("down"));
  auto tiered = NewTieredCacheClient({&local, &shared});
  auto results = tiered->Lookup({"k1"});
  ASSERT_TRUE(results.ok());
  EXPECT_FALSE((*results)[0].has_value());
  EXPECT_TRUE(tiered->Put({{"k1", ResultOf("t1")}}).ok());
  EXPECT_EQ(local.size(), 1u);  // the healthy tier still got the write
}

TEST(TieredCacheClientTest, FailingTierRestsThenIsProbedAgain) {
  FakeCacheClient local, shared;
  FakeClock clock;
  shared.FailWith(absl::DeadlineExceededError("hangs"));
  auto tiered =
      NewTieredCacheClient({&local, &shared}, &clock, absl::Seconds(10));
  ASSERT_TRUE(tiered->Lookup({"k1"}).ok());
  ASSERT_TRUE(tiered->Lookup({"k2"}).ok());
  clock.Advance(absl::Seconds(9));
  ASSERT_TRUE(tiered->Lookup({"k3"}).ok());
  EXPECT_EQ(shared.lookups(), 1);  // one deadline paid, not one per call
  shared.FailWith(absl::OkStatus());
  ASSERT_TRUE(shared.Put({{"k4", ResultOf("t4")}}).ok());
  clock.Advance(absl::Seconds(2));
  auto results = tiered->Lookup({"k4"});
  ASSERT_TRUE(results.ok());
  EXPECT_TRUE((*results)[0].has_value());  // back in use
  EXPECT_EQ(shared.lookups(), 2);
}

TEST(SigningCacheClientTest, ForgedTamperedAndUnsignedEntriesAreMisses) {
  FakeCacheClient store;
  auto fleet = NewSigningCacheClient(&store, "fleet key");
  v1::CachedResult passed = ResultOf("t1");
  passed.mutable_result()->set_status(v1::TEST_STATUS_PASSED);
  ASSERT_TRUE(fleet->Put({{"k1", passed}}).ok());
  auto found = fleet->Lookup({"k1"});
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE((*found)[0].has_value());
  EXPECT_EQ((*found)[0]->result().test_id(), "t1");

  // Someone with write access to the store turns a failure into a pass,
  // keeping the old signature: a miss.
  v1::CachedResult failed = *(*found)[0];
  failed.mutable_result()->set_status(v1::TEST_STATUS_FAILED);
  ASSERT_TRUE(fleet->Put({{"k2", failed}}).ok());
  v1::CachedResult forged = failed;
  forged.mutable_result()->set_status(v1::TEST_STATUS_PASSED);
  store.Tamper("k2", forged);
  // Unsigned, or signed with another key, or moved to another action key.
  store.Tamper("k3", ResultOf("t3"));
  auto other = NewSigningCacheClient(&store, "another key");
  ASSERT_TRUE(other->Put({{"k4", passed}}).ok());
  store.Tamper("k5", *(*found)[0]);
  auto looked_up = fleet->Lookup({"k2", "k3", "k4", "k5"});
  ASSERT_TRUE(looked_up.ok());
  for (const auto& entry : *looked_up) EXPECT_FALSE(entry.has_value());
  // The store's own bookkeeping (who wrote it, when) is not signed.
  v1::CachedResult restamped = *(*found)[0];
  restamped.set_writer("cache-server");
  restamped.set_stored_at_unix_ms(42);
  store.Tamper("k1", restamped);
  EXPECT_TRUE((*fleet->Lookup({"k1"}))[0].has_value());
}

TEST(FleetCacheClientTest, TiersSignedOnlyWithAKey) {
  FakeCacheClient local, shared;
  EXPECT_EQ(NewFleetCacheClient({}, "fleet key"), nullptr);
  shared.Tamper("k1", ResultOf("unsigned"));

  auto plain = NewFleetCacheClient({&local, &shared}, "");
  auto found = plain->Lookup({"k1"});
  ASSERT_TRUE(found.ok());
  EXPECT_TRUE((*found)[0].has_value());  // no key: taken as it is
  EXPECT_EQ(local.size(), 1u);           // and copied to the earlier tier

  auto signing = NewFleetCacheClient({&local, &shared}, "fleet key");
  found = signing->Lookup({"k1"});
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE((*found)[0].has_value());  // unsigned: a miss
  ASSERT_TRUE(signing->Put({{"k2", ResultOf("t2")}}).ok());
  found = signing->Lookup({"k2"});
  ASSERT_TRUE(found.ok());
  EXPECT_TRUE((*found)[0].has_value());
  EXPECT_EQ(shared.size(), 2u);  // written to every tier, signed
}

TEST(FleetCacheClientTest, AnUnsignedSharedEntryNeverReachesTheLocalTier) {
  FakeCacheClient local, shared;
  shared.Tamper("k1", ResultOf("unsigned"));
  auto signing = NewFleetCacheClient({&local, &shared}, "fleet key");
  auto found = signing->Lookup({"k1"});
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE((*found)[0].has_value());
  EXPECT_EQ(local.size(), 0u);  // checked before it could be copied down
}

// A real cache behind the real service on a loopback port.
class GrpcCacheClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ResultCacheOptions options;
    options.dir = dir_.Join("cache");
    auto cache = ResultCache::Open(options);
    ASSERT_TRUE(cache.ok()) << cache.status();
    cache_ = *std::move(cache);
    service_ = std::make_unique<ResultCacheService>(cache_.get());
    int port = 0;
    server_ = ServeOnLoopback(service_.get(), &port);
    ASSERT_NE(server_, nullptr);
    address_ = "127.0.0.1:" + std::to_string(port);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  TestDir dir_;
  std::unique_ptr<ResultCache> cache_;
  std::unique_ptr<ResultCacheService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

TEST_F(GrpcCacheClientTest, TalksToTheRealServiceOverLoopback) {
  auto client = NewGrpcCacheClient(address_);
  const std::string key = Sha256Hex("action");
  ASSERT_TRUE(client->Put({{key, ResultOf("t1")}}).ok());
  auto results = client->Lookup({key, Sha256Hex("other")});
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_TRUE((*results)[0].has_value());
  EXPECT_EQ((*results)[0]->result().test_id(), "t1");
  EXPECT_FALSE((*results)[1].has_value());
  auto stats = client->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->entries(), 1);
  EXPECT_EQ(stats->hits(), 1);
  EXPECT_THAT(std::string(client->Lookup({"not-hex"}).status().message()),
              ::testing::HasSubstr("not 64 hex characters"));
  server_->Shutdown();

  auto unreachable = NewGrpcCacheClient(address_)->Stats();
  EXPECT_EQ(unreachable.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(
      std::string(unreachable.status().message()),
      ::testing::HasSubstr("cannot reach the cache service at " + address_));
}

TEST_F(GrpcCacheClientTest, ALargeBatchGoesInPartsAndAnswersInOrder) {
  // 1,100 keys: five calls of at most 250. Every third key is stored.
  std::vector<std::string> keys;
  CacheEntries stored;
  for (int i = 0; i < 1100; ++i) {
    keys.push_back(Sha256Hex("action " + std::to_string(i)));
    if (i % 3 == 0)
      stored.emplace_back(keys.back(), ResultOf(absl::StrCat("t", i)));
  }
  ASSERT_TRUE(cache_->Put(stored).ok());
  auto client = NewGrpcCacheClient(address_);
  auto results = client->Lookup(keys);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), keys.size());
  for (int i = 0; i < 1100; ++i) {
    ASSERT_EQ((*results)[i].has_value(), i % 3 == 0) << i;
    if (i % 3 == 0) {
      EXPECT_EQ((*results)[i]->result().test_id(), absl::StrCat("t", i));
    }
  }
  EXPECT_EQ(cache_->Stats().hits(), 367);

  // One bad key in a middle part fails the whole lookup, saying why.
  keys[600] = "not-hex";
  auto failed = client->Lookup(keys);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(failed.status().message()),
              ::testing::HasSubstr("not 64 hex characters"));
}

TEST_F(GrpcCacheClientTest, OlderClientsStillGetParsedResults) {
  const std::string key = Sha256Hex("action");
  ASSERT_TRUE(cache_->Put(key, ResultOf("t1")).ok());
  auto stub = v1::ResultCache::NewStub(MakeChannel(address_));

  for (bool accepts_encoded : {false, true}) {
    v1::CacheLookupRequest request;
    request.add_keys(key);
    request.add_keys(Sha256Hex("other"));
    request.set_accepts_encoded(accepts_encoded);
    v1::CacheLookupResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub->Lookup(&context, request, &response).ok());
    ASSERT_EQ(response.found_size(), 2);
    EXPECT_TRUE(response.found(0));
    EXPECT_FALSE(response.found(1));
    v1::CachedResult hit;
    if (accepts_encoded) {
      ASSERT_EQ(response.encoded_results_size(), 2);
      EXPECT_EQ(response.results_size(), 0);
      ASSERT_TRUE(hit.ParseFromString(response.encoded_results(0)));
      EXPECT_TRUE(response.encoded_results(1).empty());
    } else {
      ASSERT_EQ(response.results_size(), 2);
      EXPECT_EQ(response.encoded_results_size(), 0);
      hit = response.results(0);
    }
    EXPECT_EQ(hit.result().test_id(), "t1");
  }
}

}  // namespace
}  // namespace testfleet
