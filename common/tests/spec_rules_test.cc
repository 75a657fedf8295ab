#include "common/spec_rules.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace testfleet {
namespace {

// Every path of up to 8 characters made of a name's letter, dots and
// slashes: the cases of "//", ".", "..", leading, trailing and climbing.
std::vector<std::string> ShortPaths() {
  std::vector<std::string> paths = {""};
  for (size_t begin = 0, length = 0; length < 8; ++length) {
    const size_t end = paths.size();
    for (size_t i = begin; i < end; ++i) {
      for (char c : {'a', '.', '/'}) paths.push_back(paths[i] + c);
    }
    begin = end;
  }
  return paths;
}

TEST(SpecRulesTest, IsNormalPathAgreesWithNormalizePathOnEveryShortPath) {
  int normal = 0;
  for (const std::string& path : ShortPaths()) {
    const bool expected = NormalizePath(path) == path;
    EXPECT_EQ(IsNormalPath(path), expected) << "\"" << path << "\"";
    normal += expected;
  }
  EXPECT_GT(normal, 100);  // both answers are exercised
  EXPECT_TRUE(IsNormalPath("../../a/b.c"));
  EXPECT_FALSE(IsNormalPath("/a/../b"));
}

}  // namespace
}  // namespace testfleet
