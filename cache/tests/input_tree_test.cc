#include "cache/input_tree.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;

TreeFile File(const std::string& path, const std::string& content,
              bool executable = false) {
  return {path, BlobDigest::Of(content), executable};
}

// Reads Directory blobs from what the builder made.
DirectoryFetcher FromBuilder(const InputTreeBuilder& builder, int* fetches) {
  return [&builder, fetches](const std::vector<BlobDigest>& digests)
             -> absl::StatusOr<std::vector<std::string>> {
    ++*fetches;
    std::vector<std::string> out;
    for (const BlobDigest& digest : digests) {
      auto it = builder.directories().find(digest.ToString());
      if (it == builder.directories().end())
        return absl::NotFoundError(digest.ToString());
      out.push_back(it->second);
    }
    return out;
  };
}

TEST(InputTreeTest, BuildsAndWalksBackTheSameFilesFoldersAndModes) {
  InputTreeBuilder builder;
  const std::vector<TreeFile> files = {File("/src/p/data/a.txt", "a"),
                                       File("/src/p/bin/run", "#!", true),
                                       File("/src/p/data/deep/b.txt", "b")};
  auto root = builder.Add(files, {"/src/p/empty"});
  ASSERT_TRUE(root.ok()) << root.status();
  int fetches = 0;
  auto tree = FlattenTree(*root, FromBuilder(builder, &fetches));
  ASSERT_TRUE(tree.ok()) << tree.status();
  // One fetch a level: /, src, p, data|bin|empty, deep.
  EXPECT_EQ(fetches, 5);
  std::map<std::string, TreeFile> by_path;
  for (const TreeFile& file : tree->files) by_path[file.path] = file;
  ASSERT_EQ(by_path.size(), 3u);
  EXPECT_TRUE(by_path["/src/p/bin/run"].executable);
  EXPECT_FALSE(by_path["/src/p/data/a.txt"].executable);
  EXPECT_TRUE(by_path["/src/p/data/deep/b.txt"].digest == BlobDigest::Of("b"));
  EXPECT_THAT(tree->folders, ::testing::Contains("/src/p/empty"));
  EXPECT_EQ(tree->file_bytes, 4);
}

TEST(InputTreeTest, SameContentSameRootAndSharedFoldersStoredOnce) {
  InputTreeBuilder builder;
  auto first = builder.Add({File("/p/a", "1"), File("/p/b", "2")}, {});
  const size_t blobs = builder.directories().size();
  auto again = builder.Add({File("/p/b", "2"), File("/p/a", "1")}, {});
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_TRUE(*first == *again);  // order does not matter
  EXPECT_EQ(builder.directories().size(), blobs);
  auto changed = builder.Add({File("/p/a", "1"), File("/p/b", "3")}, {});
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed == *first);
  // A new /p and a new /: two more records, no more.
  EXPECT_EQ(builder.directories().size(), blobs + 2);
}

TEST(InputTreeTest, ConflictsAndBadPathsAreRefused) {
  InputTreeBuilder builder;
  EXPECT_THAT(builder.Add({File("relative/a", "x")}, {}).status().message(),
              HasSubstr("not absolute and normal"));
  EXPECT_THAT(builder.Add({File("/p/../a", "x")}, {}).status().message(),
              HasSubstr("not absolute and normal"));
  EXPECT_THAT(builder.Add({File("/p/a", "x"), File("/p/a/b", "y")}, {})
                  .status()
                  .message(),
              HasSubstr("lies under a file"));
  EXPECT_THAT(builder.Add({File("/p/a", "x"), File("/p/a", "y")}, {})
                  .status()
                  .message(),
              HasSubstr("given twice with different content"));
}

TEST(InputTreeTest, WalkRefusesSymlinksAndGarbage) {
  reapi::Directory with_link;
  auto* link = with_link.add_symlinks();
  link->set_name("escape");
  link->set_target("/etc/passwd");
  const std::string bytes = with_link.SerializeAsString();
  auto fetch = [&](const std::vector<BlobDigest>& digests)
      -> absl::StatusOr<std::vector<std::string>> {
    return std::vector<std::string>(digests.size(), bytes);
  };
  EXPECT_THAT(FlattenTree(BlobDigest::Of(bytes), fetch).status().message(),
              HasSubstr("/escape is a symbolic link"));
  auto garbage = [](const std::vector<BlobDigest>& digests)
      -> absl::StatusOr<std::vector<std::string>> {
    return std::vector<std::string>(digests.size(), "\xff\xff\xff");
  };
  EXPECT_THAT(FlattenTree(BlobDigest::Empty(), garbage).status().message(),
              HasSubstr("is not a Directory message"));
}

}  // namespace
}  // namespace testfleet

namespace testfleet {
namespace {

TEST(DigestStringTest, ReadsWhatToStringWrites) {
  const BlobDigest digest = BlobDigest::Of("content");
  auto parsed = ParseDigestString(digest.ToString());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(*parsed == digest);
  EXPECT_FALSE(ParseDigestString(digest.HashHex()).ok());  // no size
  EXPECT_FALSE(ParseDigestString(digest.HashHex() + "/-1").ok());
  EXPECT_FALSE(ParseDigestString("abc/3").ok());
}

}  // namespace
}  // namespace testfleet
