#include "common/file_digester.h"

#include "common/digest.h"
#include "common/tests/test_dir.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

class FileDigesterTest : public ::testing::Test {
 protected:
  // Files written by the test are "new"; a clock an hour ahead makes them old
  // enough to memoize.
  FakeClock clock_{absl::Now() + absl::Hours(1)};
  TestDir dir_;
};

TEST_F(FileDigesterTest, HashesOnceWhileTheFileIsUnchanged) {
  dir_.Write("bin/test", "binary v1");
  FileDigester digester(&clock_);
  auto first = digester.Digest(dir_.path(), "bin/test");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->sha256(), Sha256Hex("binary v1"));
  EXPECT_EQ(first->path(), "bin/test");
  EXPECT_EQ(first->size_bytes(), 9);
  auto second = digester.Digest(dir_.path(), "bin/test");
  EXPECT_EQ(second->sha256(), first->sha256());
  EXPECT_EQ(digester.files_hashed(), 1);
  EXPECT_EQ(digester.memo_hits(), 1);
}

TEST_F(FileDigesterTest, ChangedFileIsHashedAgain) {
  dir_.Write("data.txt", "aaaa");
  FileDigester digester(&clock_);
  ASSERT_TRUE(digester.Digest(dir_.path(), "data.txt").ok());
  dir_.Write("data.txt", "aaab");  // same size, new content and ctime
  auto digest = digester.Digest(dir_.path(), "data.txt");
  EXPECT_EQ(digest->sha256(), Sha256Hex("aaab"));
  EXPECT_EQ(digester.files_hashed(), 2);
}

TEST_F(FileDigesterTest, RecentlyModifiedFilesAreNotSaved) {
  dir_.Write("fresh.txt", "x");
  std::string memo = dir_.Join("memo.pb");
  {
    FileDigester digester;  // real clock: the file is younger than 2 s
    ASSERT_TRUE(digester.Digest(dir_.path(), "fresh.txt").ok());
    ASSERT_TRUE(digester.Digest(dir_.path(), "fresh.txt").ok());
    EXPECT_EQ(digester.files_hashed(), 1);  // trusted within this process
    ASSERT_TRUE(digester.Save(memo).ok());
  }
  FileDigester reloaded(&clock_);
  ASSERT_TRUE(reloaded.Load(memo).ok());
  ASSERT_TRUE(reloaded.Digest(dir_.path(), "fresh.txt").ok());
  EXPECT_EQ(reloaded.files_hashed(), 1);  // but not by the next run
}

TEST_F(FileDigesterTest, MemoSurvivesSaveAndLoad) {
  dir_.Write("a.txt", "content");
  std::string memo = dir_.Join("memo.pb");
  {
    FileDigester digester(&clock_);
    ASSERT_TRUE(digester.Digest(dir_.path(), "a.txt").ok());
    ASSERT_TRUE(digester.Save(memo).ok());
  }
  FileDigester reloaded(&clock_);
  ASSERT_TRUE(reloaded.Load(memo).ok());
  ASSERT_TRUE(reloaded.Digest(dir_.path(), "a.txt").ok());
  EXPECT_EQ(reloaded.files_hashed(), 0);
  EXPECT_EQ(reloaded.memo_hits(), 1);
}

TEST_F(FileDigesterTest, ErrorsNameThePath) {
  FileDigester digester(&clock_);
  auto missing = digester.Digest(dir_.path(), "nope.txt");
  EXPECT_NE(missing.status().message().find("nope.txt"), std::string::npos);
  auto folder = digester.Digest("/", "tmp");
  EXPECT_NE(folder.status().message().find("not a regular file"),
            std::string::npos);
  dir_.Write("bad-memo", "not a protobuf \xff\xff\xff");
  EXPECT_FALSE(digester.Load(dir_.Join("bad-memo")).ok());
}

}  // namespace
}  // namespace testfleet
