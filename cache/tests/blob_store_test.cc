// CAS blobs and REAPI action results in the cache, on a real RocksDB.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "cache/db_options.h"
#include "cache/reapi_names.h"
#include "cache/result_cache.h"
#include "cache/tests/cache_test_base.h"
#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"

namespace testfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Content(int i, size_t size = 1000) {
  std::string content = absl::StrCat("blob ", i, " ");
  content.resize(size, static_cast<char>('a' + i % 26));
  return content;
}

class BlobStoreTest : public CacheTestBase {
 protected:
  BlobDigest Put(ResultCache& cache, const std::string& content) {
    BlobDigest digest = BlobDigest::Of(content);
    EXPECT_TRUE(cache.PutBlob(digest, content).ok());
    return digest;
  }
  bool Has(ResultCache& cache, const BlobDigest& digest) {
    return !cache.FindMissingBlobs({&digest, 1})[0];
  }
  std::string Read(ResultCache& cache, const BlobDigest& digest,
                   int64_t offset = 0, int64_t limit = 0) {
    std::string out;
    absl::Status read =
        cache.StreamBlob(digest, offset, limit, [&](absl::string_view bytes) {
          out.append(bytes.data(), bytes.size());
          return true;
        });
    EXPECT_TRUE(read.ok()) << read;
    return out;
  }
  // What one blob of Content(0) counts against max_bytes.
  int64_t OneBlobBytes() {
    return BytesOf([&](ResultCache& cache) { Put(cache, Content(0)); });
  }
};

TEST_F(BlobStoreTest, StoresChecksAndReadsBlobs) {
  auto cache = Open();
  const BlobDigest stored = Put(*cache, "hello");
  EXPECT_EQ(cache->ReadBlob(stored)->value(), "hello");
  // The empty blob is always there; a stranger never is.
  const BlobDigest stranger = BlobDigest::Of("stranger");
  EXPECT_THAT(cache->FindMissingBlobs({stored, BlobDigest::Empty(), stranger}),
              ElementsAre(false, false, true));
  EXPECT_EQ(cache->ReadBlob(BlobDigest::Empty())->value(), "");
  EXPECT_FALSE(cache->ReadBlob(stranger)->has_value());
  // A client's claimed size is not trusted before the blob is found.
  BlobDigest huge = stranger;
  huge.size = int64_t{1} << 60;
  EXPECT_FALSE(cache->ReadBlob(huge)->has_value());
  // A blob whose content is not its digest's is refused and not stored.
  BlobDigest lie = stranger;
  lie.size = 5;
  absl::Status refused = cache->PutBlob(lie, "HELLO");
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("nothing stored"));
  EXPECT_FALSE(Has(*cache, lie));
  // The right hash with the wrong size is another blob, absent.
  BlobDigest resized = stored;
  resized.size = 6;
  EXPECT_FALSE(Has(*cache, resized));
  EXPECT_EQ(cache->Stats().blobs().entries(), 1);
}

TEST_F(BlobStoreTest, LargeBlobsStreamInChunksAndAbandonedUploadsLeaveNothing) {
  const int64_t chunk = ResultCache::kBlobChunkBytes;
  std::string large(3 * chunk + 12345, '\0');
  for (size_t i = 0; i < large.size(); ++i)
    large[i] = static_cast<char>((i * 131) % 251);
  const BlobDigest digest = BlobDigest::Of(large);
  {
    auto cache = Open();
    // Half an upload, then the writer is dropped: nothing shows, and its
    // chunks are gone (the store holds no bytes).
    auto abandoned = cache->StartBlobWrite(digest).value();
    ASSERT_TRUE(
        abandoned->Append(absl::string_view(large).substr(0, 2 * chunk + 1))
            .ok());
    abandoned.reset();
    EXPECT_FALSE(Has(*cache, digest));
    EXPECT_EQ(cache->Stats().bytes(), 0);

    // In odd pieces, across chunk boundaries.
    auto writer = cache->StartBlobWrite(digest).value();
    for (size_t at = 0; at < large.size(); at += 70'001) {
      ASSERT_TRUE(
          writer->Append(absl::string_view(large).substr(at, 70'001)).ok());
    }
    ASSERT_TRUE(writer->Finish().ok());
    EXPECT_TRUE(Has(*cache, digest));
  }
  auto cache = Open();  // and after a restart
  EXPECT_EQ(Read(*cache, digest), large);
  EXPECT_EQ(Read(*cache, digest, chunk - 10, 20), large.substr(chunk - 10, 20));
  EXPECT_EQ(Read(*cache, digest, 3 * chunk), large.substr(3 * chunk));
  absl::Status past = cache->StreamBlob(digest, digest.size + 1, 0,
                                        [](absl::string_view) { return true; });
  EXPECT_TRUE(absl::IsOutOfRange(past)) << past;
  // An upload of the wrong length is refused at Finish.
  auto short_writer = cache->StartBlobWrite(BlobDigest::Of("abc")).value();
  ASSERT_TRUE(short_writer->Append("ab").ok());
  EXPECT_THAT(short_writer->Finish().message(),
              HasSubstr("ended after 2 of its 3"));
}

TEST_F(BlobStoreTest, ABlobDamagedOnDiskIsAMissThenUploadedAgain) {
  const std::string content = Content(7, 5000);
  const BlobDigest digest = BlobDigest::Of(content);
  {
    auto cache = Open();
    Put(*cache, content);
  }
  // Flip a byte of the stored chunk, as a bad disk would.
  RewriteStored(2, "",
                [](std::string& value) { value[value.size() / 2] ^= 0x55; });
  auto cache = Open();
  EXPECT_TRUE(Has(*cache, digest));  // the index does not read values
  EXPECT_FALSE(cache->ReadBlob(digest)->has_value());
  EXPECT_EQ(cache->Stats().blobs().corrupt(), 1);
  EXPECT_FALSE(Has(*cache, digest));  // so a client uploads it again
  Put(*cache, content);
  EXPECT_EQ(cache->ReadBlob(digest)->value(), content);
}

TEST_F(BlobStoreTest, AnActionResultWhoseBlobsAreGoneIsAMiss) {
  const std::string output = Content(1), tree_file = Content(2);
  const BlobDigest action = BlobDigest::Of("action");
  // Sized so that one more blob of 1000 bytes evicts exactly the oldest.
  auto probe = Open();
  const BlobDigest output_digest = Put(*probe, output);
  reapi::ActionResult result;
  auto* file = result.add_output_files();
  file->set_path("out.txt");
  *file->mutable_digest() = output_digest.ToProto();
  ASSERT_TRUE(probe->PutActionResult(action, result).ok());
  const int64_t used = probe->Stats().bytes();
  ASSERT_TRUE(probe->GetActionResult(action)->has_value());
  probe.reset();
  std::filesystem::remove_all(dir_.Join("cache"));

  auto cache = Open(used + 600);
  Put(*cache, output);
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(cache->PutActionResult(action, result).ok());
  clock_.Advance(absl::Seconds(1));
  Put(*cache, Content(3));  // evicts the output, the oldest entry
  EXPECT_FALSE(Has(*cache, output_digest));
  EXPECT_EQ(cache->Stats().action_results().entries(), 1);
  EXPECT_FALSE(cache->GetActionResult(action)->has_value());
  EXPECT_EQ(cache->Stats().action_results().entries(), 0);  // deleted

  // The same through an output directory's Tree: a file inside it missing.
  cache.reset();
  std::filesystem::remove_all(dir_.Join("cache"));
  auto roomy = Open();
  reapi::Tree tree;
  auto* inside = tree.mutable_root()->add_files();
  inside->set_name("data.bin");
  *inside->mutable_digest() = BlobDigest::Of(tree_file).ToProto();
  const BlobDigest tree_digest = Put(*roomy, tree.SerializeAsString());
  reapi::ActionResult with_tree;
  auto* dir = with_tree.add_output_directories();
  dir->set_path("out");
  *dir->mutable_tree_digest() = tree_digest.ToProto();
  ASSERT_TRUE(roomy->PutActionResult(action, with_tree).ok());
  EXPECT_FALSE(roomy->GetActionResult(action)->has_value());
  Put(*roomy, tree_file);
  ASSERT_TRUE(roomy->PutActionResult(action, with_tree).ok());
  EXPECT_TRUE(roomy->GetActionResult(action)->has_value());
}

TEST_F(BlobStoreTest, PinnedBlobsSurviveAFullCacheUntilReleased) {
  const int64_t one = OneBlobBytes();

  auto cache = Open(4 * one);
  const BlobDigest pinned = Put(*cache, Content(0));
  const BlobDigest loose = Put(*cache, Content(1));
  EXPECT_TRUE(
      cache->PinBlobs("suite-1", {pinned, BlobDigest::Of("absent")}).size() ==
      1);
  EXPECT_EQ(cache->Stats().blobs().pinned(), 1);
  clock_.Advance(absl::Hours(2));  // past the TTL, too
  for (int i = 10; i < 30; ++i) Put(*cache, Content(i));
  EXPECT_TRUE(Has(*cache, pinned));
  EXPECT_FALSE(Has(*cache, loose));
  EXPECT_LE(cache->Stats().bytes(), 4 * one);
  // Released, it is the most recently used, then ages out like the rest.
  cache->UnpinBlobs("suite-1");
  EXPECT_EQ(cache->Stats().blobs().pinned(), 0);
  for (int i = 30; i < 40; ++i) Put(*cache, Content(i));
  EXPECT_FALSE(Has(*cache, pinned));
}

TEST_F(BlobStoreTest, ResultsAndBlobsShareOneLimitAndOneLru) {
  const int64_t one = OneBlobBytes();

  auto cache = Open(3 * one);
  v1::CachedResult result;
  result.mutable_result()->set_test_id("t");
  result.mutable_result()->set_stdout_tail(std::string(900, 'r'));
  const std::string key(64, 'a');
  ASSERT_TRUE(cache->Put(key, result).ok());
  for (int i = 0; i < 3; ++i) Put(*cache, Content(i));
  // The result was the least recently used: a blob put evicted it.
  EXPECT_FALSE(cache->Lookup(key)->has_value());
  v1::CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.results().entries(), 0);
  EXPECT_EQ(stats.evictions(), 1);
  EXPECT_EQ(stats.entries(), stats.blobs().entries());
  EXPECT_LE(stats.bytes(), 3 * one);
}

TEST(ReapiNamesTest, ParsesResourceNames) {
  const BlobDigest digest = BlobDigest::Of("x");
  auto read = ParseReadResourceName("blobs/" + digest.ToString());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->instance, "");
  EXPECT_TRUE(read->digest == digest);
  read = ParseReadResourceName("team/a/blobs/" + digest.ToString() + "/extra");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->instance, "team/a");
  auto write =
      ParseWriteResourceName("i/uploads/u-1/blobs/" + digest.ToString());
  ASSERT_TRUE(write.ok()) << write.status();
  EXPECT_EQ(write->instance, "i");
  EXPECT_EQ(write->upload_id, "u-1");
  // Each malformed HASH/SIZE, in a read name and in a write name.
  const std::string hash = digest.HashHex();
  for (const std::string& bad :
       {hash, hash + "/-1", hash + "/01", hash + "/+1", hash + "/\t42",
        hash + "/ 42", hash + "/99999999999999999999", hash + "/1e3",
        hash.substr(1) + "/1", "G" + hash.substr(1) + "/1", std::string()}) {
    EXPECT_FALSE(ParseReadResourceName("blobs/" + bad).ok()) << bad;
    EXPECT_FALSE(ParseWriteResourceName("uploads/u/blobs/" + bad).ok()) << bad;
  }
  for (const std::string& bad : {std::string(""), std::string("blobs"),
                                 "x/actions/blobs/" + digest.ToString(),
                                 "uploads/u/blobs/" + digest.ToString()}) {
    EXPECT_FALSE(ParseReadResourceName(bad).ok()) << bad;
  }
  for (const std::string& bad :
       {"uploads/blobs/" + digest.ToString(),
        "uploads//blobs/" + digest.ToString(), "blobs/" + digest.ToString(),
        "u/uploads/x/things/" + digest.ToString()}) {
    EXPECT_FALSE(ParseWriteResourceName(bad).ok()) << bad;
  }
}

TEST(ReapiNamesTest, DirectoriesNameSinglePathComponentsInOrder) {
  auto directory = [](std::vector<std::string> names) {
    reapi::Directory dir;
    for (const std::string& name : names) {
      auto* file = dir.add_files();
      file->set_name(name);
      *file->mutable_digest() = BlobDigest::Empty().ToProto();
    }
    return dir;
  };
  EXPECT_TRUE(CheckDirectory(directory({"a", "b"})).ok());
  for (const auto& bad : std::vector<std::vector<std::string>>{
           {".."}, {"."}, {""}, {"a/b"}, {"/etc"}, {"b", "a"}, {"a", "a"}}) {
    EXPECT_TRUE(absl::IsInvalidArgument(CheckDirectory(directory(bad))))
        << bad[0];
  }
  reapi::Directory clash = directory({"x"});
  clash.add_directories()->set_name("x");
  *clash.mutable_directories(0)->mutable_digest() =
      BlobDigest::Empty().ToProto();
  EXPECT_FALSE(CheckDirectory(clash).ok());
}

}  // namespace
}  // namespace testfleet
