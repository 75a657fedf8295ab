#include "common/text.h"

#include "absl/strings/str_format.h"

namespace testfleet {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";

// The length of the well-formed UTF-8 sequence at `i` and its code point,
// or 0 (Unicode Table 3-7).
int DecodeAt(absl::string_view s, size_t i, char32_t* code_point) {
  const auto byte = [&](size_t k) {
    return static_cast<unsigned char>(s[i + k]);
  };
  const unsigned char c = byte(0);
  if (c < 0x80) {
    *code_point = c;
    return 1;
  }
  int length;
  unsigned char low = 0x80, high = 0xBF;  // the second byte's range
  if (c >= 0xC2 && c <= 0xDF) {
    length = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    length = 3;
    if (c == 0xE0) low = 0xA0;   // no overlong forms
    if (c == 0xED) high = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    length = 4;
    if (c == 0xF0) low = 0x90;   // no overlong forms
    if (c == 0xF4) high = 0x8F;  // nothing past U+10FFFF
  } else {
    return 0;
  }
  if (i + length > s.size()) return 0;
  if (byte(1) < low || byte(1) > high) return 0;
  for (int k = 2; k < length; ++k) {
    if ((byte(k) & 0xC0) != 0x80) return 0;
  }
  char32_t cp = c & (0x7F >> length);
  for (int k = 1; k < length; ++k) cp = (cp << 6) | (byte(k) & 0x3F);
  *code_point = cp;
  return length;
}

// Calls `emit(code_point, bytes)` for each character of valid UTF-8, with
// U+FFFD for each ill-formed byte.
template <typename Emit>
void ForEachCharacter(absl::string_view s, Emit emit) {
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp = 0;
    const int length = DecodeAt(s, i, &cp);
    if (length == 0) {
      emit(char32_t{0xFFFD}, absl::string_view(kReplacement));
      ++i;
    } else {
      emit(cp, s.substr(i, length));
      i += length;
    }
  }
}

bool IsAscii(absl::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

}  // namespace

std::string ValidUtf8(absl::string_view bytes) {
  if (IsAscii(bytes)) return std::string(bytes);
  std::string out;
  out.reserve(bytes.size());
  ForEachCharacter(bytes, [&](char32_t, absl::string_view character) {
    out.append(character.data(), character.size());
  });
  return out;
}

std::string XmlChars(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  ForEachCharacter(bytes, [&](char32_t cp, absl::string_view character) {
    if (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') {
      out += absl::StrFormat("\\x%02x", static_cast<unsigned>(cp));
    } else if (cp == 0xFFFE || cp == 0xFFFF) {
      out += kReplacement;
    } else {
      out.append(character.data(), character.size());
    }
  });
  return out;
}

std::string TerminalSafe(absl::string_view bytes, bool keep_lines) {
  std::string out;
  out.reserve(bytes.size());
  ForEachCharacter(bytes, [&](char32_t cp, absl::string_view character) {
    const bool control = cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0);
    if (control && !(keep_lines && (cp == '\n' || cp == '\t'))) {
      out += cp == '\n' ? std::string("\\n")
                        : absl::StrFormat("\\x%02x", static_cast<unsigned>(cp));
    } else {
      out.append(character.data(), character.size());
    }
  });
  return out;
}

}  // namespace testfleet
