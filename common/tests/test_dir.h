#pragma once

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace testfleet {

/// A fresh temporary folder for one test, removed when it goes out of scope.
class TestDir {
 public:
  TestDir() {
    const std::string pattern =
        std::filesystem::temp_directory_path() / "tf-XXXXXX";
    path_ = pattern;
    // Thrown, not returned: GoogleTest fails the test that made it, with
    // the folder and the reason, rather than every path pointing nowhere.
    if (mkdtemp(path_.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(),
                              "creating the test folder " + pattern);
    }
  }
  ~TestDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Join(const std::string& relative) const {
    return path_ + "/" + relative;
  }
  /// Writes `content` to `relative`, creating folders on the way.
  std::string Write(const std::string& relative,
                    const std::string& content) const {
    std::string full = Join(relative);
    std::filesystem::create_directories(
        std::filesystem::path(full).parent_path());
    std::ofstream(full, std::ios::binary | std::ios::trunc) << content;
    return full;
  }

 private:
  std::string path_;
};

}  // namespace testfleet
