#include "common/file_digester.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/digest.h"

namespace testfleet {
namespace {

int64_t Nanos(const struct timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

bool SameFile(const v1::FileDigestMemo::Entry& entry, const struct stat& st) {
  return entry.size_bytes() == st.st_size &&
         entry.mtime_ns() == Nanos(st.st_mtim) &&
         entry.ctime_ns() == Nanos(st.st_ctim) && entry.inode() == st.st_ino &&
         entry.device() == st.st_dev;
}

constexpr int64_t kRacyWindowNs = 2'000'000'000;

}  // namespace

absl::StatusOr<v1::InputDigest> FileDigester::Digest(
    const std::string& root, const std::string& relative_path) {
  std::string path = relative_path.empty() || relative_path[0] == '/'
                         ? relative_path
                         : absl::StrCat(root, "/", relative_path);
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a regular file"));
  }
  v1::InputDigest digest;
  digest.set_path(relative_path);
  digest.set_size_bytes(st.st_size);
  digest.set_executable((st.st_mode & S_IXUSR) != 0);
  {
    absl::MutexLock lock(&mu_);
    auto it = memo_.find(path);
    if (it != memo_.end() && SameFile(it->second, st)) {
      ++memo_hits_;
      digest.set_sha256(it->second.sha256());
      return digest;
    }
  }
  absl::StatusOr<std::string> sha = Sha256FileHex(path);
  if (!sha.ok()) return sha.status();
  digest.set_sha256(*sha);

  absl::MutexLock lock(&mu_);
  ++files_hashed_;
  {
    v1::FileDigestMemo::Entry& entry = memo_[path];
    entry.set_path(path);
    entry.set_sha256(*sha);
    entry.set_size_bytes(st.st_size);
    entry.set_mtime_ns(Nanos(st.st_mtim));
    entry.set_ctime_ns(Nanos(st.st_ctim));
    entry.set_inode(st.st_ino);
    entry.set_device(st.st_dev);
    entry.set_hashed_at_ns(absl::ToUnixNanos(clock_->Now()));
  }
  return digest;
}

absl::Status FileDigester::Load(const std::string& memo_path) {
  std::ifstream in(memo_path, std::ios::binary);
  if (!in) return absl::OkStatus();
  v1::FileDigestMemo memo;
  if (!memo.ParseFromIstream(&in)) {
    return absl::DataLossError(absl::StrCat(
        "digest memo ", memo_path, " is corrupt; delete it to start afresh"));
  }
  absl::MutexLock lock(&mu_);
  for (auto& entry : *memo.mutable_entries()) {
    std::string path = entry.path();
    memo_[path] = std::move(entry);
  }
  return absl::OkStatus();
}

absl::Status FileDigester::Save(const std::string& memo_path) const {
  v1::FileDigestMemo memo;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [path, entry] : memo_) {
      // A file hashed within the timestamp granularity of its last write
      // could change again unseen: trust it for this process only.
      if (entry.hashed_at_ns() - entry.mtime_ns() > kRacyWindowNs) {
        *memo.add_entries() = entry;
      }
    }
  }
  std::string tmp = absl::StrCat(memo_path, ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out || !memo.SerializeToOstream(&out)) {
      return absl::UnavailableError(
          absl::StrCat("cannot write digest memo ", tmp));
    }
  }
  if (std::rename(tmp.c_str(), memo_path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot rename ", tmp, " to ", memo_path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

int64_t FileDigester::files_hashed() const {
  absl::MutexLock lock(&mu_);
  return files_hashed_;
}

int64_t FileDigester::memo_hits() const {
  absl::MutexLock lock(&mu_);
  return memo_hits_;
}

}  // namespace testfleet
