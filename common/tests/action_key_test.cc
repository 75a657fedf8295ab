#include "common/action_key.h"

#include <functional>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

v1::TestSpec FixedSpec() {
  v1::TestSpec spec;
  spec.set_id("math.add");
  spec.add_argv("build/bin/math_test");
  spec.add_argv("--gtest_filter=Math.Add");
  spec.set_cwd(".");
  (*spec.mutable_env())["SEED"] = "1";
  (*spec.mutable_env())["LANG"] = "C";
  v1::InputDigest* a = spec.add_inputs();
  a->set_path("build/bin/math_test");
  a->set_sha256(std::string(64, 'a'));
  v1::InputDigest* b = spec.add_inputs();
  b->set_path("data/add.txt");
  b->set_sha256(std::string(64, 'b'));
  return spec;
}

v1::Platform FixedPlatform() {
  v1::Platform platform;
  platform.set_os("linux");
  platform.set_arch("x86_64");
  return platform;
}

TEST(ActionKeyTest, GoldenKeyIsStable) {
  // Written down once: a change here invalidates every cache in the field.
  EXPECT_EQ(ComputeActionKey(FixedSpec(), FixedPlatform()).hex(),
            "4b7c58d0b95aa73096ec28f9883129cb51716c78303452bfeb7aea702a88bc0e");
  // The hex alone, as the coordinator makes it at submit, is the same.
  EXPECT_EQ(ActionKeyHex(FixedSpec(), FixedPlatform()),
            "4b7c58d0b95aa73096ec28f9883129cb51716c78303452bfeb7aea702a88bc0e");
}

TEST(ActionKeyTest, PartsFromAKnownHexAreTheComputedKey) {
  v1::TestSpec reordered = FixedSpec();
  reordered.mutable_inputs()->SwapElements(0, 1);
  const v1::ActionKey computed = ComputeActionKey(reordered, FixedPlatform());
  const v1::ActionKey rebuilt = ActionKeyWithHex(
      reordered, FixedPlatform(), ActionKeyHex(reordered, FixedPlatform()));
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(rebuilt, computed))
      << rebuilt.DebugString() << computed.DebugString();
  // Inputs come sorted by path, as they are hashed.
  ASSERT_EQ(rebuilt.inputs_size(), 2);
  EXPECT_EQ(rebuilt.inputs(0).path(), "build/bin/math_test");
  EXPECT_EQ(rebuilt.env().at("SEED"), "1");
  EXPECT_EQ(rebuilt.platform().os(), "linux");
}

TEST(ActionKeyTest, IndependentOfInputOrderAndTestMetadata) {
  v1::TestSpec reordered = FixedSpec();
  reordered.mutable_inputs()->SwapElements(0, 1);
  reordered.set_id("another.name");
  reordered.set_priority(7);
  reordered.add_tags("slow");
  EXPECT_EQ(ComputeActionKey(reordered, FixedPlatform()).hex(),
            ComputeActionKey(FixedSpec(), FixedPlatform()).hex());
}

TEST(ActionKeyTest, EveryPartChangesTheKey) {
  const std::string base = ComputeActionKey(FixedSpec(), FixedPlatform()).hex();
  auto changed = [&](const std::function<void(v1::TestSpec&)>& mutate) {
    v1::TestSpec spec = FixedSpec();
    mutate(spec);
    return ComputeActionKey(spec, FixedPlatform()).hex() != base;
  };
  auto platform_changed =
      [&](const std::function<void(v1::Platform&)>& mutate) {
        v1::Platform platform = FixedPlatform();
        mutate(platform);
        return ComputeActionKey(FixedSpec(), platform).hex() != base;
      };
  EXPECT_TRUE(
      changed([](v1::TestSpec& s) { s.set_argv(1, "--gtest_filter=*"); }));
  EXPECT_TRUE(changed([](v1::TestSpec& s) { s.add_argv(""); }));
  EXPECT_TRUE(changed([](v1::TestSpec& s) { s.set_cwd("sub"); }));
  EXPECT_TRUE(
      changed([](v1::TestSpec& s) { (*s.mutable_env())["SEED"] = "2"; }));
  EXPECT_TRUE(changed([](v1::TestSpec& s) {
    std::string sha = s.inputs(1).sha256();
    sha[63] = 'c';  // one input's content changed
    s.mutable_inputs(1)->set_sha256(sha);
  }));
  EXPECT_TRUE(changed(
      [](v1::TestSpec& s) { s.mutable_inputs(1)->set_path("data/sub.txt"); }));
  EXPECT_TRUE(platform_changed([](v1::Platform& p) { p.set_tag("gcc13"); }));
  EXPECT_TRUE(platform_changed([](v1::Platform& p) { p.set_arch("aarch64"); }));
}

TEST(ActionKeyTest, DescribesWhatChanged) {
  v1::TestSpec changed = FixedSpec();
  changed.set_argv(1, "--gtest_filter=Math.Sub");
  (*changed.mutable_env())["SEED"] = "2";
  (*changed.mutable_env())["NEW"] = "x";
  changed.mutable_inputs(1)->set_sha256(std::string(64, 'c'));
  v1::Platform platform = FixedPlatform();
  platform.set_tag("gcc13");
  EXPECT_THAT(
      DescribeKeyChanges(ComputeActionKey(FixedSpec(), FixedPlatform()),
                         ComputeActionKey(changed, platform)),
      ::testing::ElementsAre(
          "argv[1] changed: \"--gtest_filter=Math.Add\" -> "
          "\"--gtest_filter=Math.Sub\"",
          "env SEED changed", "env NEW added",
          "input data/add.txt changed (sha256 bbbbbbbbbbbb -> cccccccccccc)",
          "platform tag changed: \"\" -> \"gcc13\""));
  EXPECT_TRUE(DescribeKeyChanges(ComputeActionKey(FixedSpec(), FixedPlatform()),
                                 ComputeActionKey(FixedSpec(), FixedPlatform()))
                  .empty());
}

TEST(ActionKeyTest, ArgvBoundariesMatter) {
  v1::TestSpec joined, split;
  joined.add_argv("ab");
  split.add_argv("a");
  split.add_argv("b");
  EXPECT_NE(ComputeActionKey(joined, FixedPlatform()).hex(),
            ComputeActionKey(split, FixedPlatform()).hex());
}

}  // namespace
}  // namespace testfleet
