#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace testfleet {

/// Text that tests and clients produce, made safe for where it goes.

/// Valid UTF-8: every ill-formed sequence (stray continuation bytes,
/// overlong forms such as "\300\200", surrogates, code points past
/// U+10FFFF, truncated sequences) becomes U+FFFD, one per maximal bad
/// subpart as Unicode recommends. Valid input comes back unchanged.
std::string ValidUtf8(absl::string_view bytes);

/// Valid UTF-8 holding only characters XML 1.0 allows: other control
/// characters are written as "\x1b", and U+FFFE, U+FFFF as U+FFFD.
/// Not escaped for markup: see XmlEscape.
std::string XmlChars(absl::string_view bytes);

/// For a terminal or a log line: valid UTF-8 with every control character
/// (C0 but newline and tab when `keep_lines`, DEL, and the C1 range, which
/// holds CSI) written as "\x1b", so output cannot move the cursor, clear
/// the screen, set the window title or forge a line.
std::string TerminalSafe(absl::string_view bytes, bool keep_lines = true);

/// TerminalSafe on one line: newlines escaped too. For names and ids in
/// logs.
inline std::string LogSafe(absl::string_view bytes) {
  return TerminalSafe(bytes, /*keep_lines=*/false);
}

}  // namespace testfleet
