#include "common/digest.h"

#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace testfleet {
namespace {

TEST(DigestTest, KnownVectors) {
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(DigestTest, IncrementalEqualsOneShot) {
  Sha256Hasher hasher;
  hasher.Update("a");
  hasher.Update("bc");
  EXPECT_EQ(hasher.FinishHex(), Sha256Hex("abc"));
}

TEST(DigestTest, FileLargerThanTheBufferMatchesInMemoryDigest) {
  std::string path = ::testing::TempDir() + "/digest_big.bin";
  std::string content;
  for (int i = 0; i < (3 << 20) + 17; ++i)
    content.push_back(static_cast<char>(i * 31));
  std::ofstream(path, std::ios::binary) << content;
  auto digest = Sha256FileHex(path);
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, Sha256Hex(content));
}

TEST(DigestTest, MissingFileIsNotFoundNamingThePath) {
  auto digest = Sha256FileHex("/nonexistent/file.bin");
  EXPECT_EQ(digest.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(digest.status().message().find("/nonexistent/file.bin"),
            std::string::npos);
}

TEST(DigestTest, HexRoundTripAndErrors) {
  std::string raw("\x00\xff\x10", 3);
  EXPECT_EQ(BytesToHex(raw), "00ff10");
  EXPECT_EQ(*HexToBytes("00FF10"), raw);
  EXPECT_FALSE(HexToBytes("abc").ok());
  EXPECT_FALSE(HexToBytes("zz").ok());
}

}  // namespace
}  // namespace testfleet
