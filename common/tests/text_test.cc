#include "common/text.h"

#include "gtest/gtest.h"

namespace testfleet {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";

TEST(ValidUtf8Test, KeepsValidTextAndReplacesEveryIllFormedSequence) {
  EXPECT_EQ(ValidUtf8("plain ascii\n"), "plain ascii\n");
  EXPECT_EQ(ValidUtf8("gr\xC3\xBC\xC3\x9F \xF0\x9F\x98\x80"),
            "gr\xC3\xBC\xC3\x9F \xF0\x9F\x98\x80");
  // Overlong NUL (the input that aborted coordctl), a lone continuation
  // byte, a surrogate, past U+10FFFF, a truncated sequence.
  EXPECT_EQ(ValidUtf8("\xC0\x80"), std::string(kReplacement) + kReplacement);
  EXPECT_EQ(ValidUtf8("a\x80z"), std::string("a") + kReplacement + "z");
  EXPECT_EQ(ValidUtf8("\xED\xA0\x80"),
            std::string(kReplacement) + kReplacement + kReplacement);
  EXPECT_EQ(ValidUtf8("\xF4\x90\x80\x80").find("\xF4"), std::string::npos);
  EXPECT_EQ(ValidUtf8("end\xE2\x82"),
            std::string("end") + kReplacement + kReplacement);
}

TEST(XmlCharsTest, WritesOnlyCharactersXmlAllows) {
  EXPECT_EQ(XmlChars("tab\tline\n"), "tab\tline\n");
  EXPECT_EQ(XmlChars("bell\x07"), "bell\\x07");
  EXPECT_EQ(XmlChars("\xEF\xBF\xBE"), kReplacement);  // U+FFFE
  EXPECT_EQ(XmlChars("\xEF\xBF\xBF"), kReplacement);  // U+FFFF
  EXPECT_EQ(XmlChars("\xC0\x80"), std::string(kReplacement) + kReplacement);
}

TEST(TerminalSafeTest, EscapesWhatCouldDriveATerminal) {
  // Clear screen, window title, CSI in its 8-bit form.
  EXPECT_EQ(TerminalSafe("\x1b[2J\x1b]0;pwned\x07ok\n"),
            "\\x1b[2J\\x1b]0;pwned\\x07ok\n");
  EXPECT_EQ(TerminalSafe("\xC2\x9B"
                         "31m"),
            "\\x9b31m");
  EXPECT_EQ(TerminalSafe("a\rb"), "a\\x0db");
  EXPECT_EQ(LogSafe("two\nlines"), "two\\nlines");
  EXPECT_EQ(TerminalSafe("caf\xC3\xA9\ttab"), "caf\xC3\xA9\ttab");
}

}  // namespace
}  // namespace testfleet
