#pragma once

#include "rocksdb/options.h"

namespace testfleet {

/// RocksDB options of the result cache: point lookups (bloom filters, a block
/// cache), WAL on. Shared with the benchmark's raw-RocksDB baseline so both
/// are measured on the same configuration.
rocksdb::Options CacheDbOptions();

}  // namespace testfleet
