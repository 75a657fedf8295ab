#include "cache/db_options.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "rocksdb/memtablerep.h"
#include "rocksdb/table.h"
#include "spdlog/spdlog.h"

namespace testfleet {
namespace {

// RocksDB's own LOG file would sit on the data disk; when that disk fills,
// Debian's RocksDB (built with assertions) aborts on the next log line after
// a failed one. Its warnings and errors go to our log instead.
class SpdlogLogger : public rocksdb::Logger {
 public:
  SpdlogLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const rocksdb::InfoLogLevel level, const char* format,
            va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char line[1024];
    vsnprintf(line, sizeof(line), format, ap);
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL) {
      spdlog::error("rocksdb: {}", line);
    } else {
      spdlog::warn("rocksdb: {}", line);
    }
  }
};

}  // namespace

bool IsLockHeld(const rocksdb::Status& s) {
  // "IO error: While lock file: DIR/LOCK: Resource temporarily unavailable"
  const std::string message = s.ToString();
  return s.IsIOError() &&
         (message.find("While lock file") != std::string::npos ||
          message.find("/LOCK:") != std::string::npos);
}

bool IsDiskFull(const rocksdb::Status& s) {
  return s.IsNoSpace() || s.ToString().find("No space") != std::string::npos;
}

std::shared_ptr<rocksdb::Logger> RocksDbLogger() {
  static const auto logger = std::make_shared<SpdlogLogger>();
  return logger;
}

absl::Status CacheDirError(const rocksdb::Status& s, const std::string& dir) {
  std::string message = s.ToString();
  // RocksDB says "While lock file: DIR/LOCK: Resource temporarily
  // unavailable"; a plain "lock" would also match "block" in a corruption.
  if (IsLockHeld(s)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cache dir ", dir,
        " is in use by another process (RocksDB LOCK is held); stop that "
        "process or choose another cache dir"));
  }
  if (IsDiskFull(s)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cache dir ", dir, " is out of disk space (", message,
                     "); free space there or lower its size limit"));
  }
  return absl::InternalError(absl::StrCat("cache dir ", dir, ": ", message));
}

bool WaitForBackgroundWork(rocksdb::DB* db, absl::Duration limit) {
  const absl::Time give_up = absl::Now() + limit;
  const char* const kBusy[] = {
      "rocksdb.num-running-flushes", "rocksdb.mem-table-flush-pending",
      "rocksdb.num-running-compactions", "rocksdb.compaction-pending"};
  while (true) {
    uint64_t busy = 0;
    for (const char* property : kBusy) {
      uint64_t value = 0;
      // Aggregated over the column families.
      if (db->GetAggregatedIntProperty(property, &value)) busy += value;
    }
    if (busy == 0) return true;
    if (absl::Now() >= give_up) return false;
    absl::SleepFor(absl::Milliseconds(100));
  }
}

rocksdb::Options CacheDbOptions() {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.OptimizeForPointLookup(64);  // MiB of block cache, bloom filters
  // Debian's RocksDB is built for any x86-64, so its CRC32C is the table
  // one; XXH3 is as fast without SSE4.2. Files written before keep theirs.
  options.table_factory->GetOptions<rocksdb::BlockBasedTableOptions>()
      ->checksum = rocksdb::kXXH3;
  // Table files are read through a mapping of the page cache: a block read
  // is no system call and no copy. With XXH3 and reads in groups
  // (kKeysPerMultiGet), a 1,000-key batch over gRPC took 0.82x the p50 and
  // 0.86x the p99 (BENCHMARKS.md, issue 19).
  options.allow_mmap_reads = true;
  options.max_background_jobs = 2;
  options.info_log = RocksDbLogger();
  options.allow_concurrent_memtable_write =
      false;  // the meta memtable is a vector
  return options;
}

std::vector<rocksdb::ColumnFamilyDescriptor> CacheColumnFamilies() {
  rocksdb::ColumnFamilyOptions values(CacheDbOptions());
  // A batch lookup decompresses one block per key: LZ4 does that faster
  // than the default Snappy (a 1,000-key lookup 11.1 -> 8.8 ms in-process,
  // BENCHMARKS.md, issue 19). Files written before keep their own.
  values.compression = rocksdb::kLZ4Compression;
  rocksdb::ColumnFamilyOptions meta(CacheDbOptions());
  meta.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
  // Blob chunks (up to 1 MiB each) live in RocksDB's blob files, apart from
  // the keys, so compactions move keys, not megabytes; their space comes
  // back through blob garbage collection.
  rocksdb::ColumnFamilyOptions chunks(CacheDbOptions());
  chunks.enable_blob_files = true;
  chunks.min_blob_size = 4096;
  chunks.blob_file_size = 256 << 20;
  chunks.enable_blob_garbage_collection = true;
  chunks.blob_garbage_collection_age_cutoff = 0.25;
  rocksdb::ColumnFamilyOptions actions(CacheDbOptions());
  return {{rocksdb::kDefaultColumnFamilyName, values},
          {"meta", meta},
          {"blobs", chunks},
          {"actions", actions}};
}

}  // namespace testfleet
