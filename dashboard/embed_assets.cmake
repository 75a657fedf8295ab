# Writes OUTPUT, a C++ file holding every file named in ASSETS (comma
# separated, under SOURCE_DIR) as a raw string, with FindAsset() over them. Run at build time
# by dashboard/CMakeLists.txt, so an edited page is compiled in again.
string(REPLACE "," ";" ASSETS "${ASSETS}")
set(entries "")
set(bodies "")
set(index 0)
foreach(asset IN LISTS ASSETS)
  file(READ "${SOURCE_DIR}/${asset}" content)
  string(FIND "${content}" ")tfasset\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${asset} contains the raw-string delimiter )tfasset\"")
  endif()
  get_filename_component(ext "${asset}" EXT)
  if(ext STREQUAL ".js")
    set(type "text/javascript; charset=utf-8")
  elseif(ext STREQUAL ".css")
    set(type "text/css; charset=utf-8")
  elseif(ext STREQUAL ".svg")
    set(type "image/svg+xml")
  else()
    set(type "text/html; charset=utf-8")
  endif()
  if(asset MATCHES "\\.html$")
    set(path "/${asset}")
  else()
    set(path "/assets/${asset}")
  endif()
  string(APPEND bodies "constexpr char kBody${index}[] = R\"tfasset(${content})tfasset\";\n")
  string(APPEND entries "    {\"${path}\", \"${type}\", {kBody${index}, sizeof(kBody${index}) - 1}},\n")
  math(EXPR index "${index} + 1")
endforeach()
file(WRITE "${OUTPUT}.tmp" "// Generated from dashboard/assets by embed_assets.cmake; do not edit.
#include \"dashboard/assets.h\"

namespace testfleet {
namespace {
${bodies}
constexpr Asset kAssets[] = {
${entries}};
}  // namespace

const Asset* FindAsset(std::string_view path) {
  for (const Asset& asset : kAssets) {
    if (asset.path == path) return &asset;
  }
  return nullptr;
}

}  // namespace testfleet
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
