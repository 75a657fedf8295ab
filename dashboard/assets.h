#pragma once

#include <string_view>

namespace testfleet {

/// A file of the dashboard's pages (dashboard/assets/), compiled in.
struct Asset {
  std::string_view path;  // "/assets/app.js", "/index.html"
  std::string_view content_type;
  std::string_view body;
};

/// The asset served at `path`; null when there is none.
const Asset* FindAsset(std::string_view path);

}  // namespace testfleet
