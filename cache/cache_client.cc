#include "cache/cache_client.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/digest.h"
#include "common/grpc_util.h"
#include "common/security.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "spdlog/spdlog.h"
#include "testfleet/v1/services.grpc.pb.h"

namespace testfleet {
namespace {

class LocalCacheClient : public CacheClient {
 public:
  explicit LocalCacheClient(ResultCache* cache) : cache_(cache) {}

  absl::StatusOr<std::vector<std::optional<v1::CachedResult>>> Lookup(
      const std::vector<std::string>& keys) override {
    return cache_->BatchLookup(keys);
  }
  absl::Status Put(const CacheEntries& entries) override {
    return cache_->Put(entries);
  }
  absl::StatusOr<v1::CacheStats> Stats() override { return cache_->Stats(); }
  absl::StatusOr<v1::CacheGcResponse> Gc(const std::string& writer) override {
    return cache_->Gc(writer);
  }
  std::string Describe() const override {
    return absl::StrCat("local cache ", cache_->options().dir);
  }

 private:
  ResultCache* cache_;
};

// Lookups and puts take milliseconds; a cache slower than this is treated
// as down, and tests run uncached rather than wait for it.
constexpr absl::Duration kDataDeadline = absl::Seconds(5);
// Keys a lookup call carries at most; a larger batch is split.
constexpr size_t kKeysPerLookupCall = 250;

class GrpcCacheClient : public CacheClient {
 public:
  GrpcCacheClient(std::shared_ptr<grpc::Channel> channel, std::string address)
      : stub_(v1::ResultCache::NewStub(channel)),
        address_(std::move(address)) {}

  absl::StatusOr<std::vector<std::optional<v1::CachedResult>>> Lookup(
      const std::vector<std::string>& keys) override {
    // A large batch (a suite's keys at submit) goes as several calls at
    // once on the one connection: the server reads one part while another
    // travels and is parsed here. One call did each of those in turn.
    const size_t parts = std::max<size_t>(
        1, (keys.size() + kKeysPerLookupCall - 1) / kKeysPerLookupCall);
    std::vector<std::optional<v1::CachedResult>> results(keys.size());
    std::vector<LookupPart> calls(parts);
    absl::Mutex mu;
    size_t pending = parts;
    for (size_t p = 0; p < parts; ++p) {
      LookupPart& call = calls[p];
      call.begin = keys.size() * p / parts;
      call.end = keys.size() * (p + 1) / parts;
      for (size_t i = call.begin; i < call.end; ++i)
        call.request.add_keys(keys[i]);
      call.request.set_accepts_encoded(true);
      call.context.set_deadline(DeadlineIn(kDataDeadline));
      stub_->async()->Lookup(&call.context, &call.request, &call.response,
                             [&, &call = call](grpc::Status status) {
                               // Parsed as each part arrives, while the others
                               // are in flight.
                               call.outcome = Check(status);
                               if (call.outcome.ok())
                                 call.outcome = TakeAnswer(call, results);
                               absl::MutexLock lock(&mu);
                               --pending;
                             });
    }
    {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(
          +[](size_t* left) { return *left == 0; }, &pending));
    }
    for (const LookupPart& call : calls) RETURN_IF_ERROR(call.outcome);
    return results;
  }
  absl::Status Put(const CacheEntries& entries) override {
    v1::CachePutRequest request;
    for (const auto& [key, value] : entries) {
      request.add_keys(key);
      *request.add_results() = value;
    }
    v1::CachePutResponse response;
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(kDataDeadline));
    return Check(stub_->Put(&context, request, &response));
  }
  absl::StatusOr<v1::CacheStats> Stats() override {
    v1::CacheStats stats;
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(absl::Seconds(10)));
    RETURN_IF_ERROR(
        Check(stub_->Stats(&context, v1::CacheStatsRequest(), &stats)));
    return stats;
  }
  absl::StatusOr<v1::CacheGcResponse> Gc(const std::string& writer) override {
    v1::CacheGcRequest request;
    request.set_writer(writer);
    v1::CacheGcResponse response;
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(absl::Minutes(5)));
    RETURN_IF_ERROR(Check(stub_->Gc(&context, request, &response)));
    return response;
  }
  std::string Describe() const override {
    return absl::StrCat("cache service at ", address_);
  }

 private:
  // Keys [begin, end) of a batch, in one call.
  struct LookupPart {
    size_t begin = 0, end = 0;
    v1::CacheLookupRequest request;
    v1::CacheLookupResponse response;
    grpc::ClientContext context;
    absl::Status outcome;
  };

  // Moves a part's hits into `results` (its own range of them).
  absl::Status TakeAnswer(
      LookupPart& call,
      std::vector<std::optional<v1::CachedResult>>& results) const {
    v1::CacheLookupResponse& response = call.response;
    const int asked = static_cast<int>(call.end - call.begin);
    // A server older than `accepts_encoded` answers in `results`.
    const bool encoded = response.encoded_results_size() > 0;
    const int answered =
        encoded ? response.encoded_results_size() : response.results_size();
    if (response.found_size() != asked || answered != asked) {
      return absl::InternalError(
          absl::StrCat("cache service at ", address_, " answered ",
                       response.found_size(), " of ", asked, " keys"));
    }
    for (int i = 0; i < asked; ++i) {
      if (!response.found(i)) continue;
      std::optional<v1::CachedResult>& result = results[call.begin + i];
      if (!encoded) {
        result = std::move(*response.mutable_results(i));
        continue;
      }
      result.emplace();
      if (!result->ParseFromString(response.encoded_results(i))) {
        // Never a wrong hit: the test runs.
        spdlog::warn(
            "cache service at {} answered key {} with a result "
            "that does not parse; taken as a miss",
            address_, call.request.keys(i));
        result.reset();
      }
    }
    return absl::OkStatus();
  }

  absl::Status Check(const grpc::Status& status) const {
    return FromGrpcStatus(status, "cache service", address_);
  }
  std::unique_ptr<v1::ResultCache::Stub> stub_;
  std::string address_;
};

class TieredCacheClient : public CacheClient {
 public:
  TieredCacheClient(std::vector<CacheClient*> tiers, Clock* clock,
                    absl::Duration retry_after)
      : tiers_(std::move(tiers)),
        clock_(clock),
        retry_after_(retry_after),
        skip_until_ms_(tiers_.size()) {}

  absl::StatusOr<std::vector<std::optional<v1::CachedResult>>> Lookup(
      const std::vector<std::string>& keys) override {
    std::vector<std::optional<v1::CachedResult>> results(keys.size());
    std::vector<size_t> missing(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) missing[i] = i;
    for (size_t tier = 0; tier < tiers_.size() && !missing.empty(); ++tier) {
      std::vector<std::string> wanted;
      for (size_t i : missing) wanted.push_back(keys[i]);
      if (Skipped(tier)) continue;
      auto found = tiers_[tier]->Lookup(wanted);
      Track(tier, found.status());
      if (!found.ok()) continue;
      CacheEntries fill;
      std::vector<size_t> still_missing;
      for (size_t j = 0; j < missing.size(); ++j) {
        if ((*found)[j].has_value()) {
          results[missing[j]] = std::move((*found)[j]);
          fill.emplace_back(keys[missing[j]], *results[missing[j]]);
        } else {
          still_missing.push_back(missing[j]);
        }
      }
      for (size_t earlier = 0; earlier < tier && !fill.empty(); ++earlier) {
        if (!Skipped(earlier)) Track(earlier, tiers_[earlier]->Put(fill));
      }
      missing = std::move(still_missing);
    }
    return results;
  }
  absl::Status Put(const CacheEntries& entries) override {
    for (size_t tier = 0; tier < tiers_.size(); ++tier) {
      if (!Skipped(tier)) Track(tier, tiers_[tier]->Put(entries));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<v1::CacheStats> Stats() override {
    return tiers_.front()->Stats();
  }
  absl::StatusOr<v1::CacheGcResponse> Gc(const std::string& writer) override {
    return tiers_.front()->Gc(writer);
  }
  std::string Describe() const override {
    std::vector<std::string> names;
    for (CacheClient* tier : tiers_) names.push_back(tier->Describe());
    return absl::StrJoin(names, ", then ");
  }

 private:
  int64_t NowMs() const { return absl::ToUnixMillis(clock_->Now()); }
  // A failing tier rests until its retry time; the first call after it
  // probes the tier again.
  bool Skipped(size_t tier) const {
    const int64_t until = skip_until_ms_[tier].load();
    return until != 0 && NowMs() < until;
  }
  // Says once when a tier starts failing and once when it is back.
  void Track(size_t tier, const absl::Status& status) {
    if (!status.ok()) {
      if (skip_until_ms_[tier].exchange(
              NowMs() + absl::ToInt64Milliseconds(retry_after_)) == 0) {
        spdlog::warn(
            "{} is failing ({}); tests run without it until it answers",
            tiers_[tier]->Describe(), status.ToString());
      }
    } else if (skip_until_ms_[tier].exchange(0) != 0) {
      spdlog::info("{} answers again", tiers_[tier]->Describe());
    }
  }
  std::vector<CacheClient*> tiers_;
  Clock* const clock_;
  const absl::Duration retry_after_;
  // 0 while the tier is healthy.
  std::vector<std::atomic<int64_t>> skip_until_ms_;
};

class SigningCacheClient : public CacheClient {
 public:
  SigningCacheClient(CacheClient* inner, std::string key)
      : inner_(inner), key_(std::move(key)) {}

  absl::StatusOr<std::vector<std::optional<v1::CachedResult>>> Lookup(
      const std::vector<std::string>& keys) override {
    auto found = inner_->Lookup(keys);
    if (!found.ok()) return found;
    for (size_t i = 0; i < keys.size(); ++i) {
      std::optional<v1::CachedResult>& entry = (*found)[i];
      if (!entry ||
          ConstantTimeEquals(entry->signature(),
                             CacheEntrySignature(key_, keys[i], *entry))) {
        continue;
      }
      if (!warned_.exchange(true)) {
        spdlog::warn(
            "cache entry {} (writer \"{}\") is {}: treated as a miss, as are "
            "later ones (not logged)",
            keys[i], entry->writer(),
            entry->signature().empty() ? "unsigned" : "wrongly signed");
      }
      entry.reset();
    }
    return found;
  }
  absl::Status Put(const CacheEntries& entries) override {
    CacheEntries signed_entries = entries;
    for (auto& [key, entry] : signed_entries) {
      entry.set_signature(CacheEntrySignature(key_, key, entry));
    }
    return inner_->Put(signed_entries);
  }
  absl::StatusOr<v1::CacheStats> Stats() override { return inner_->Stats(); }
  absl::StatusOr<v1::CacheGcResponse> Gc(const std::string& writer) override {
    return inner_->Gc(writer);
  }
  std::string Describe() const override {
    return absl::StrCat(inner_->Describe(), " (signed)");
  }

 private:
  CacheClient* inner_;
  const std::string key_;
  std::atomic<bool> warned_{false};
};

}  // namespace

std::string CacheEntrySignature(const std::string& fleet_key,
                                const std::string& key_hex,
                                const v1::CachedResult& entry) {
  // The result, deterministically serialized, under the key it answers;
  // writer and store time are the store's business, not the test's.
  std::string bytes = key_hex;
  bytes.push_back('\0');
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    entry.result().SerializeToCodedStream(&coded);
  }
  return HmacSha256(fleet_key, bytes);
}

std::unique_ptr<CacheClient> NewSigningCacheClient(CacheClient* inner,
                                                   std::string key) {
  return std::make_unique<SigningCacheClient>(inner, std::move(key));
}

std::unique_ptr<CacheClient> NewLocalCacheClient(ResultCache* cache) {
  return std::make_unique<LocalCacheClient>(cache);
}

std::unique_ptr<CacheClient> NewGrpcCacheClient(const std::string& address) {
  return NewGrpcCacheClient(MakeChannel(address), address);
}

std::unique_ptr<CacheClient> NewGrpcCacheClient(
    std::shared_ptr<grpc::Channel> channel, const std::string& address) {
  return std::make_unique<GrpcCacheClient>(std::move(channel), address);
}

std::unique_ptr<CacheClient> NewTieredCacheClient(
    std::vector<CacheClient*> tiers, Clock* clock, absl::Duration retry_after) {
  return std::make_unique<TieredCacheClient>(std::move(tiers), clock,
                                             retry_after);
}

namespace {

// Tiers each checked on their own, so an entry is checked before the tiered
// lookup copies it from a shared tier into a local one.
class FleetCacheClient : public TieredCacheClient {
 public:
  FleetCacheClient(std::vector<std::unique_ptr<CacheClient>> checked_tiers)
      : TieredCacheClient(Pointers(checked_tiers), RealClock::Get(),
                          kRetryFailingTierAfter),
        checked_tiers_(std::move(checked_tiers)) {}

 private:
  static std::vector<CacheClient*> Pointers(
      const std::vector<std::unique_ptr<CacheClient>>& owned) {
    std::vector<CacheClient*> pointers;
    for (const auto& tier : owned) pointers.push_back(tier.get());
    return pointers;
  }
  // Moving the vector keeps the clients where the base points at them.
  std::vector<std::unique_ptr<CacheClient>> checked_tiers_;
};

}  // namespace

std::unique_ptr<CacheClient> NewFleetCacheClient(
    std::vector<CacheClient*> tiers, const std::string& signing_key) {
  if (tiers.empty()) return nullptr;
  if (signing_key.empty()) return NewTieredCacheClient(std::move(tiers));
  std::vector<std::unique_ptr<CacheClient>> checked;
  for (CacheClient* tier : tiers) {
    checked.push_back(std::make_unique<SigningCacheClient>(tier, signing_key));
  }
  return std::make_unique<FleetCacheClient>(std::move(checked));
}

}  // namespace testfleet
