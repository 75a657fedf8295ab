#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"

namespace testfleet {

/// RocksDB's info log for every database of ours: warnings and errors into
/// the process log, nothing written beside the data.
std::shared_ptr<rocksdb::Logger> RocksDbLogger();

/// Whether `s` says another process holds the database's LOCK file.
bool IsLockHeld(const rocksdb::Status& s);
/// Whether `s` says the disk is full (RocksDB does not always set the
/// NoSpace subcode on an ENOSPC it passes through).
bool IsDiskFull(const rocksdb::Status& s);

/// A RocksDB error on the cache folder `dir` as a status saying what to do:
/// another process holds it, the disk is full, or what RocksDB said.
absl::Status CacheDirError(const rocksdb::Status& s, const std::string& dir);

/// Waits, at most `limit`, until `db` runs and owes no flush or compaction;
/// false if it was still busy then. For measuring reads after a burst of
/// writes: the compactions that burst leaves would share the cores.
bool WaitForBackgroundWork(rocksdb::DB* db, absl::Duration limit);

/// RocksDB options of the result cache: point lookups (bloom filters, a block
/// cache), WAL on. Shared with the benchmark's raw-RocksDB baseline so both
/// are measured on the same configuration.
rocksdb::Options CacheDbOptions();

/// The cache's column families: result values ("default"), per-entry
/// metadata ("meta": size, access and expiry time; in an append-only
/// memtable since it is only scanned at open, never searched), CAS blob
/// chunks ("blobs", in BlobDB blob files) and REAPI action results
/// ("actions").
std::vector<rocksdb::ColumnFamilyDescriptor> CacheColumnFamilies();

}  // namespace testfleet
