#pragma once

// Other "hosts" for integration tests: network namespaces on a bridge of
// this host, made with iproute2 (root only).
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "integration_tests/harness.h"

namespace testfleet {

inline constexpr char kIp[] = "/usr/sbin/ip";

/// A bridge on this host and one namespace ("host") per name, each with an
/// address on the bridge's subnet and its own link to the bridge; all
/// removed at the end.
///
///   Hosts hosts({"coord", "w1"});
///   if (!hosts.error().empty()) GTEST_SKIP() << hosts.error();
///   auto worker = hosts.Start("w1", "worker", {...}, log);
///   hosts.SetLink("w1", false);  // cut w1 off
class Hosts {
 public:
  explicit Hosts(const std::vector<std::string>& names) {
    const int n = static_cast<int>(getpid() % 250) + 1;
    bridge_ = absl::StrCat("tfbr", getpid() % 100000);
    subnet_ = absl::StrCat("10.252.", n, ".");
    Run(absl::StrCat(kIp, " link add ", bridge_, " type bridge"));
    Run(absl::StrCat(kIp, " addr add ", gateway(), "/24 dev ", bridge_));
    Run(absl::StrCat(kIp, " link set ", bridge_, " up"));
    int host = 2;
    for (const std::string& name : names) {
      Host& h = hosts_[name];
      h.ns = absl::StrCat("tf", getpid() % 100000, name);
      h.link = absl::StrCat("tfv", getpid() % 100000, "-", host);
      h.address = absl::StrCat(subnet_, host);
      const std::string inside = h.link + "i";
      Run(absl::StrCat(kIp, " netns add ", h.ns));
      Run(absl::StrCat(kIp, " link add ", h.link, " type veth peer name ",
                       inside));
      Run(absl::StrCat(kIp, " link set ", inside, " netns ", h.ns));
      Run(absl::StrCat(kIp, " link set ", h.link, " master ", bridge_));
      Run(absl::StrCat(kIp, " link set ", h.link, " up"));
      Run(absl::StrCat(kIp, " -n ", h.ns, " addr add ", h.address, "/24 dev ",
                       inside));
      Run(absl::StrCat(kIp, " -n ", h.ns, " link set ", inside, " up"));
      Run(absl::StrCat(kIp, " -n ", h.ns, " link set lo up"));
      ++host;
    }
  }
  ~Hosts() {
    for (const auto& [name, host] : hosts_) {
      (void)std::system(
          absl::StrCat(kIp, " netns del ", host.ns, " 2>/dev/null").c_str());
      (void)std::system(
          absl::StrCat(kIp, " link del ", host.link, " 2>/dev/null").c_str());
    }
    (void)std::system(
        absl::StrCat(kIp, " link del ", bridge_, " 2>/dev/null").c_str());
  }

  /// Empty when every host is ready; else the command that failed.
  const std::string& error() const { return error_; }
  /// A host's address on the bridge.
  const std::string& address(const std::string& name) {
    return hosts_[name].address;
  }
  /// This (the root) namespace's address on the bridge.
  std::string gateway() const { return subnet_ + "1"; }
  /// Takes a host's link to the bridge down (cut off) or up again.
  bool SetLink(const std::string& name, bool up) {
    return std::system(absl::StrCat(kIp, " link set ", hosts_[name].link,
                                    up ? " up" : " down")
                           .c_str()) == 0;
  }
  /// Runs build/bin/`binary` on host `name`.
  std::unique_ptr<Process> Start(const std::string& name,
                                 const std::string& binary,
                                 std::vector<std::string> args,
                                 const std::string& log) {
    args.insert(args.begin(),
                {"netns", "exec", hosts_[name].ns, BinDir() + "/" + binary});
    return std::make_unique<Process>(kIp, args, log);
  }

 private:
  struct Host {
    std::string ns, link, address;
  };
  void Run(const std::string& command) {
    if (error_.empty() && std::system((command + " 2>/dev/null").c_str()) != 0)
      error_ = command;
  }
  std::string bridge_, subnet_, error_;
  std::map<std::string, Host> hosts_;
};

}  // namespace testfleet
