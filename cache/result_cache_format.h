#pragma once
// ResultCache's on-disk format, shared by the files that implement it; not a
// public header.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "rocksdb/slice.h"
#include "xxhash.h"

namespace testfleet::result_cache_format {

inline constexpr char kValueMagic[4] = {'T', 'F', 'C', '2'};
// Below this many keys a batch is read in one piece.
inline constexpr size_t kKeysPerFetchChunk = 256;
// Keys one MultiGet reads: the blocks it pins are freed before the next
// group's reads, which then reuse memory still in the CPU's caches.
inline constexpr size_t kKeysPerMultiGet = 16;

inline constexpr size_t kValueHeader =
    24;  // magic, crc32, expires_ms, stored_ms
inline constexpr char kFormatMarkerKey[] = "\0testfleet-cache-format";
inline constexpr size_t kFormatMarkerKeySize = sizeof(kFormatMarkerKey) - 1;
inline constexpr char kFormatVersion[] = "2";
// "1" while closed cleanly: the meta column family then describes every
// value. Set to "0" at open, so a crash makes the next open rebuild the index
// from the values themselves.
inline constexpr char kCleanMarkerKey[] = "\0testfleet-cache-clean";
inline constexpr size_t kCleanMarkerKeySize = sizeof(kCleanMarkerKey) - 1;
inline constexpr size_t kMetaSize = 24;  // bytes, access_ms, expires_ms

inline void PutInt64(char* out, int64_t value) {
  auto v = static_cast<uint64_t>(value);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

inline void PutUint32(char* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

inline uint32_t GetUint32(const char* in) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

inline int64_t GetInt64(const char* in) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return static_cast<int64_t>(v);
}

// XXH3 (the checksum RocksDB itself prefers): a tenth of zlib's crc32 cost
// on a 1 KiB value.
inline uint32_t Checksum(const char* data, size_t size) {
  return static_cast<uint32_t>(XXH3_64bits(data, size));
}

inline std::string EncodeMeta(int64_t bytes, int64_t access_ms,
                              int64_t expires_ms) {
  std::string meta(kMetaSize, '\0');
  PutInt64(&meta[0], bytes);
  PutInt64(&meta[8], access_ms);
  PutInt64(&meta[16], expires_ms);
  return meta;
}

inline rocksdb::Slice AsSlice(const std::array<char, 32>& key) {
  return rocksdb::Slice(key.data(), key.size());
}
inline rocksdb::Slice AsSlice(const std::array<char, 33>& key) {
  return rocksdb::Slice(key.data(), key.size());
}

// The meta column family's key of an entry: a result's is its bare hash (as
// before blobs existed), the others' their index key.
inline rocksdb::Slice MetaKey(const std::array<char, 33>& key) {
  return key[0] == 'r' ? rocksdb::Slice(key.data() + 1, 32) : AsSlice(key);
}

}  // namespace testfleet::result_cache_format
