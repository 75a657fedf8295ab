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

/// "HOST:PORT" (or a gRPC peer, "ipv4:127.0.0.1:5000") on this machine only,
/// where a token may travel without TLS: every address the host resolves to
/// is in 127.0.0.0/8 or ::1. A name is resolved, not trusted by its spelling
/// ("127.attacker.example" is not loopback); one that does not resolve is
/// not loopback.
bool IsLoopbackAddress(const std::string& address);

/// Equal bytes, in a time that does not depend on where they differ (for
/// signatures and secrets).
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

/// What a caller may do. admin: everything; worker: pulls work, reports, and
/// reads and writes the cache; cache-write also reads; submit: submits
/// suites and reads and cancels its own; view: reads every suite, history
/// and worker, changes nothing.
enum class Role : uint32_t {
  kSubmit = 1,
  kWorker = 2,
  kCacheRead = 4,
  kCacheWrite = 8,
  kAdmin = 16,
  kView = 32,
};

struct Principal {
  std::string name;    // empty: anyone (no token file configured)
  uint32_t roles = 0;  // granted, with what they include
  bool Has(Role role) const { return (roles & static_cast<uint32_t>(role)); }
  bool anonymous() const { return name.empty(); }
  /// May read what `owner` submitted: it is the owner, or may read all.
  bool CanRead(const std::string& owner) const {
    return anonymous() || Has(Role::kAdmin) || Has(Role::kView) ||
           owner == name;
  }
  /// May change what `owner` submitted (cancel, baselines).
  bool CanChange(const std::string& owner) const {
    return anonymous() || Has(Role::kAdmin) || owner == name;
  }
  /// Everyone, with every role: the caller when no token file is configured.
  static Principal Anyone();
};

/// Bearer tokens and their roles, read from a token file (reloaded on
/// SIGHUP by the servers), one token a line:
///
///   # token                          name      roles              expires
///   0f4c2e...                        ci        worker
///   8d1a97...                        alice     submit,cache-read  2027-01-31
///
/// A token listed twice is an error (naming both lines), as is any line
/// that does not parse; a file with no tokens loads with a warning (every
/// call is then refused). Without a file, every caller is allowed: the local
/// default.
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
  absl::StatusOr<Principal> Authorize(const grpc::ServerContextBase& context,
                                      Role role) const;
  /// For calls that read suites: a token with submit (its own suites) or
  /// view (all) passes; what it may see is checked per suite.
  absl::StatusOr<Principal> AuthorizeReader(
      const grpc::ServerContextBase& context) const;
  /// The same for a request that is not a gRPC call (the dashboard).
  absl::StatusOr<Principal> AuthorizeReader(
      const std::optional<std::string>& authorization, const std::string& peer,
      bool tls) const;

  bool enabled() const { return !path_.empty(); }
  /// Reload, saying in the log what happened (for SIGHUP).
  void ReloadAndLog();

 private:
  absl::StatusOr<Principal> AuthorizeAny(
      const std::optional<std::string>& authorization, const std::string& peer,
      bool tls, uint32_t any_of, const std::string& needed) const;
  absl::StatusOr<Principal> AuthorizeCall(
      const grpc::ServerContextBase& context, uint32_t any_of,
      const std::string& needed) const;
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
