#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "cache/cas_client.h"
#include "common/file_digester.h"
#include "common/suite_loader.h"
#include "testfleet/v1/testfleet.pb.h"

namespace testfleet {

/// What a submit sent to the blob store.
struct UploadSummary {
  int64_t files = 0;  // distinct input files of the suite
  int64_t files_sent = 0;
  int64_t directories = 0;  // distinct Directory blobs
  int64_t directories_sent = 0;
  int64_t bytes_sent = 0;
};

/// Gives each test of `suite` its input tree (TestSpec.input_root, rooted at
/// "/" with the suite folder at TestSpec.exec_root): its inputs, and its
/// program when that is a file under the suite folder. Uploads the files and
/// Directory blobs that `cas` lacks (asked with FindMissingBlobs) and lists
/// them all in SuiteSpec.blobs, for the coordinator to pin. Workers without
/// a checkout then fetch them by digest. `digester` hashes programs that are
/// not inputs.
absl::StatusOr<UploadSummary> UploadInputs(LoadedSuite& suite,
                                           FileDigester& digester,
                                           CasClient& cas);

/// Downloads every test's outputs into `dir`/TEST/PATH (TEST the id as
/// SafeFileName writes it), each
/// checked against its digest. Returns how many files it wrote; a path that
/// would leave its folder is refused.
absl::StatusOr<int> DownloadOutputs(const v1::SuiteReport& report,
                                    const std::string& dir, CasClient& cas);

}  // namespace testfleet
