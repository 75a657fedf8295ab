#include "cache/db_options.h"

#include <cstdio>

#include "rocksdb/memtablerep.h"
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

rocksdb::Options CacheDbOptions() {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.OptimizeForPointLookup(64);  // MiB of block cache, bloom filters
  options.max_background_jobs = 2;
  options.info_log = RocksDbLogger();
  options.allow_concurrent_memtable_write =
      false;  // the meta memtable is a vector
  return options;
}

std::vector<rocksdb::ColumnFamilyDescriptor> CacheColumnFamilies() {
  rocksdb::ColumnFamilyOptions values(CacheDbOptions());
  rocksdb::ColumnFamilyOptions meta(CacheDbOptions());
  meta.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
  return {{rocksdb::kDefaultColumnFamilyName, values}, {"meta", meta}};
}

}  // namespace testfleet
