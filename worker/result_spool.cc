#include "worker/result_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"
#include "worker/launcher.h"

namespace testfleet {
namespace {

constexpr char kSuffix[] = ".batch";

absl::Status WriteError(const std::string& path, int error) {
  std::string why = absl::StrCat("cannot write ", path, ": ", strerror(error));
  if (error == ENOSPC || error == EDQUOT) {
    return absl::ResourceExhaustedError(
        absl::StrCat(why, "; free disk space or move --spool-dir"));
  }
  return absl::InternalError(why);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ResultSpool>> ResultSpool::Open(
    const std::string& dir, int64_t max_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create spool dir ", dir, ": ", ec.message(),
                     "; choose a writable --spool-dir"));
  }
  const std::string lock_path = dir + "/LOCK";
  int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot open ", lock_path, ": ", strerror(errno),
                     "; choose a writable --spool-dir"));
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    close(lock_fd);
    return absl::FailedPreconditionError(absl::StrCat(
        "spool dir ", dir,
        " is in use by another worker; give each worker its own --spool-dir "
        "(or --name)"));
  }
  auto spool =
      std::unique_ptr<ResultSpool>(new ResultSpool(dir, max_bytes, lock_fd));
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    absl::string_view stem = name;
    uint64_t sequence = 0;
    if (!absl::ConsumeSuffix(&stem, kSuffix) ||
        !absl::SimpleAtoi(stem, &sequence)) {
      // A batch whose write was interrupted before its rename.
      if (absl::EndsWith(name, ".tmp")) std::filesystem::remove(entry, ec);
      continue;
    }
    const int64_t size =
        static_cast<int64_t>(std::filesystem::file_size(entry, ec));
    if (ec) continue;
    spool->sizes_[sequence] = size;
    spool->bytes_ += size;
    spool->next_sequence_ = std::max(spool->next_sequence_, sequence + 1);
  }
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot list spool dir ", dir, ": ", ec.message()));
  }
  return spool;
}

ResultSpool::ResultSpool(std::string dir, int64_t max_bytes, int lock_fd)
    : dir_(std::move(dir)), max_bytes_(max_bytes), lock_fd_(lock_fd) {}

ResultSpool::~ResultSpool() {
  // An empty spool leaves nothing behind.
  if (sizes_.empty()) {
    unlink((dir_ + "/LOCK").c_str());
    rmdir(dir_.c_str());
  }
  close(lock_fd_);
}

std::string ResultSpool::PathOf(uint64_t sequence) const {
  char name[32];
  snprintf(name, sizeof(name), "%020llu",
           static_cast<unsigned long long>(sequence));
  return absl::StrCat(dir_, "/", name, kSuffix);
}

absl::Status ResultSpool::Append(const v1::ReportResultsRequest& batch) {
  const std::string bytes = batch.SerializeAsString();
  const int64_t size = static_cast<int64_t>(bytes.size());
  if (bytes_ + size > max_bytes_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("spool dir ", dir_, " is full (", bytes_, " of ",
                     max_bytes_, " bytes); raise --spool-max-bytes"));
  }
  const uint64_t sequence = next_sequence_++;
  const std::string path = PathOf(sequence);
  const std::string temporary = path + ".tmp";
  int fd =
      open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return WriteError(temporary, errno);
  const bool written =
      WriteFully(fd, bytes.data(), bytes.size()) && fdatasync(fd) == 0;
  const int error = errno;
  close(fd);
  if (!written || rename(temporary.c_str(), path.c_str()) != 0) {
    const int failure = written ? errno : error;
    unlink(temporary.c_str());
    return WriteError(path, failure);
  }
  sizes_[sequence] = size;
  bytes_ += size;
  return absl::OkStatus();
}

std::optional<ResultSpool::Entry> ResultSpool::Oldest() {
  while (!sizes_.empty()) {
    const uint64_t sequence = sizes_.begin()->first;
    std::ifstream in(PathOf(sequence), std::ios::binary);
    Entry entry;
    entry.sequence = sequence;
    if (in && entry.batch.ParseFromIstream(&in)) return entry;
    spdlog::error("spool: {} is unreadable; dropping it", PathOf(sequence));
    (void)Remove(sequence);
  }
  return std::nullopt;
}

absl::Status ResultSpool::Remove(uint64_t sequence) {
  auto it = sizes_.find(sequence);
  if (it == sizes_.end()) return absl::OkStatus();
  const std::string path = PathOf(sequence);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(
        absl::StrCat("cannot remove ", path, ": ", strerror(errno)));
  }
  bytes_ -= it->second;
  sizes_.erase(it);
  return absl::OkStatus();
}

std::vector<v1::ReportResultsRequest> SplitReport(
    const v1::ReportResultsRequest& batch, size_t max_results,
    size_t max_bytes) {
  std::vector<v1::ReportResultsRequest> parts;
  size_t part_bytes = 0;
  for (const v1::ReportedResult& reported : batch.results()) {
    const size_t bytes = reported.ByteSizeLong();
    if (parts.empty() ||
        static_cast<size_t>(parts.back().results_size()) >= max_results ||
        (parts.back().results_size() > 0 && part_bytes + bytes > max_bytes)) {
      parts.emplace_back();
      parts.back().set_worker_id(batch.worker_id());
      part_bytes = 0;
    }
    *parts.back().add_results() = reported;
    part_bytes += bytes;
  }
  return parts;
}

}  // namespace testfleet
