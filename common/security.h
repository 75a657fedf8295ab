#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "grpcpp/grpcpp.h"

namespace testfleet {

/// TLS files of a server or a client. A server with `cert_file` and
/// `key_file` serves TLS, and with `require_client_cert` only to clients
/// whose certificate `ca_file` signed (mutual TLS). A client with `ca_file`
/// connects over TLS, checking the server against it, and presents
/// `cert_file`/`key_file` when given. Nothing set: plaintext.
struct TlsConfig {
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
  bool require_client_cert = false;
};

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsConfig& tls);
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
MakeChannelCredentials(const TlsConfig& tls);

/// What this process's clients present to servers: TLS and a bearer token.
/// Set once by main() from flags; MakeChannel uses it for every channel.
struct ClientSecurity {
  TlsConfig tls;
  std::string token;
};
/// Checks the files (and reads the token file, if any) before storing.
absl::Status SetClientSecurity(ClientSecurity security);
const ClientSecurity& GetClientSecurity();

/// "HOST:PORT" on this machine only (127.0.0.0/8, ::1, localhost), where a
/// token may travel without TLS.
bool IsLoopbackAddress(const std::string& address);

/// What a caller may do. A role includes what the roles after it in this
/// list allow: admin everything; worker pulls work, reports and reads and
/// writes the cache; cache-write also reads; submit submits and follows its
/// own suites.
enum class Role : uint32_t {
  kSubmit = 1,
  kWorker = 2,
  kCacheRead = 4,
  kCacheWrite = 8,
  kAdmin = 16,
};

struct Principal {
  std::string name;    // empty: anyone (no token file configured)
  uint32_t roles = 0;  // granted, with what they include
  bool Has(Role role) const { return (roles & static_cast<uint32_t>(role)); }
  bool anonymous() const { return name.empty(); }
};

/// Bearer tokens and their roles, read from a token file (reloaded on
/// SIGHUP by the servers), one token a line:
///
///   # token                          name      roles              expires
///   0f4c2e...                        ci        worker
///   8d1a97...                        alice     submit,cache-read  2027-01-31
///
/// Without a file, every caller is allowed: the local default.
class TokenAuthority {
 public:
  /// An authority that lets everyone in.
  TokenAuthority() = default;
  static absl::StatusOr<std::unique_ptr<TokenAuthority>> Load(
      const std::string& path, const Clock* clock = RealClock::Get());

  /// Reads the file again; on an error the old tokens stay in force.
  absl::Status Reload();

  /// The caller of a call needing `role`: UNAUTHENTICATED for a missing,
  /// unknown or expired token or one sent in plaintext from another
  /// machine, PERMISSION_DENIED for a token without the role.
  absl::StatusOr<Principal> Authorize(
      const std::optional<std::string>& authorization, const std::string& peer,
      bool tls, Role role) const;
  /// The same, from a gRPC call.
  absl::StatusOr<Principal> Authorize(const grpc::ServerContext& context,
                                      Role role) const;

  bool enabled() const { return !path_.empty(); }
  /// Reload, saying in the log what happened (for SIGHUP).
  void ReloadAndLog();

 private:
  struct Entry {
    Principal principal;
    int64_t expires_unix_ms = 0;  // 0: never
  };
  std::string path_;
  const Clock* clock_ = RealClock::Get();
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> by_digest_ ABSL_GUARDED_BY(mu_);
};

}  // namespace testfleet
