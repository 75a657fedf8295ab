#include "common/runtime.h"

#include <pthread.h>

#include <array>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace testfleet {
namespace {

// What the kernel calls the calling thread.
std::string ThisThreadsName() {
  std::array<char, 16> name{};
  pthread_getname_np(pthread_self(), name.data(), name.size());
  return name.data();
}

TEST(RuntimeTest, AThreadIsNamedWithTheFirst15CharactersOnly) {
  const std::string starter = ThisThreadsName();
  std::string named, long_named;
  std::thread([&] {
    NameThisThread("tf-intake");
    named = ThisThreadsName();
    NameThisThread("tf-a-long-thread-name");
    long_named = ThisThreadsName();
  }).join();
  EXPECT_EQ(named, "tf-intake");
  EXPECT_EQ(long_named, "tf-a-long-threa");
  EXPECT_EQ(ThisThreadsName(), starter);  // only the thread that asked
}

}  // namespace
}  // namespace testfleet
