#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace testfleet {

/// Incremental SHA-256 (OpenSSL EVP).
///   Sha256Hasher h; h.Update("ab"); h.Update("c"); std::string hex =
///   h.FinishHex();
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(absl::string_view bytes);
  /// The 32 raw digest bytes. The hasher cannot be used afterwards.
  std::string FinishRaw();
  /// The digest as 64 lowercase hex characters.
  std::string FinishHex();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

/// SHA-256 of `bytes` as lowercase hex.
std::string Sha256Hex(absl::string_view bytes);

/// HMAC-SHA256 of `bytes` under `key`, raw (32 bytes).
std::string HmacSha256(absl::string_view key, absl::string_view bytes);

/// SHA-256 of a file's contents, streamed in fixed-size blocks so files of any
/// size hash in constant memory.
absl::StatusOr<std::string> Sha256FileHex(const std::string& path);

/// `bytes` bytes from the system's cryptographic random source, as hex: for
/// ids that must not be guessed.
std::string RandomHex(int bytes);

/// Lowercase hex of raw bytes, and back. HexToBytes fails on odd length or a
/// non-hex character.
std::string BytesToHex(absl::string_view bytes);
absl::StatusOr<std::string> HexToBytes(absl::string_view hex);
/// Decodes `hex` into `out` (hex.size() / 2 bytes) without allocating;
/// false on odd length or a non-hex character.
bool DecodeHex(absl::string_view hex, char* out);

}  // namespace testfleet
