#include "common/security.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/digest.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace testfleet {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path,
                                    const std::string& flag) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": cannot read ", path));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

struct RoleName {
  const char* name;
  Role role;
  uint32_t grants;  // with what it includes
};
constexpr uint32_t kAllRoles = 31;
constexpr RoleName kRoles[] = {
    {"submit", Role::kSubmit, 1},
    {"worker", Role::kWorker, 2 | 4 | 8},
    {"cache-read", Role::kCacheRead, 4},
    {"cache-write", Role::kCacheWrite, 4 | 8},
    {"admin", Role::kAdmin, kAllRoles},
};

std::string NameOf(Role role) {
  for (const RoleName& r : kRoles) {
    if (r.role == role) return r.name;
  }
  return "?";
}

std::string RolesOf(uint32_t grants) {
  std::vector<std::string> names;
  for (const RoleName& r : kRoles) {
    if (grants & static_cast<uint32_t>(r.role)) names.push_back(r.name);
  }
  return absl::StrJoin(names, ",");
}

ClientSecurity& StoredClientSecurity() {
  static ClientSecurity* security = new ClientSecurity();
  return *security;
}

// The PEM key and certificate --tls-key and --tls-cert name.
struct KeyAndCert {
  std::string key, cert;
};
absl::StatusOr<KeyAndCert> ReadKeyAndCert(const TlsConfig& tls) {
  KeyAndCert pem;
  ASSIGN_OR_RETURN(pem.key, ReadPem(tls.key_file, "--tls-key"));
  ASSIGN_OR_RETURN(pem.cert, ReadPem(tls.cert_file, "--tls-cert"));
  return pem;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsConfig& tls) {
  if (tls.cert_file.empty() && tls.key_file.empty()) {
    if (tls.require_client_cert) {
      return absl::InvalidArgumentError(
          "--require-client-cert needs TLS: give --tls-cert, --tls-key and "
          "--tls-ca");
    }
    return grpc::InsecureServerCredentials();
  }
  if (tls.cert_file.empty() || tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both --tls-cert and --tls-key");
  }
  if (tls.require_client_cert && tls.ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--require-client-cert needs --tls-ca, the CA that signs client "
        "certificates");
  }
  grpc::SslServerCredentialsOptions options(
      tls.require_client_cert
          ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
          : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ASSIGN_OR_RETURN(KeyAndCert pem, ReadKeyAndCert(tls));
  options.pem_key_cert_pairs.push_back({pem.key, pem.cert});
  if (!tls.ca_file.empty()) {
    ASSIGN_OR_RETURN(options.pem_root_certs, ReadPem(tls.ca_file, "--tls-ca"));
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
MakeChannelCredentials(const TlsConfig& tls) {
  if (tls.ca_file.empty() && tls.cert_file.empty()) {
    return grpc::InsecureChannelCredentials();
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate needs both --tls-cert and --tls-key");
  }
  grpc::SslCredentialsOptions options;
  if (!tls.ca_file.empty()) {
    ASSIGN_OR_RETURN(options.pem_root_certs, ReadPem(tls.ca_file, "--tls-ca"));
  }
  if (!tls.cert_file.empty()) {
    ASSIGN_OR_RETURN(KeyAndCert pem, ReadKeyAndCert(tls));
    options.pem_private_key = pem.key;
    options.pem_cert_chain = pem.cert;
  }
  return grpc::SslCredentials(options);
}

absl::Status SetClientSecurity(ClientSecurity security) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(security.tls);
  if (!credentials.ok()) return credentials.status();
  StoredClientSecurity() = std::move(security);
  return absl::OkStatus();
}

const ClientSecurity& GetClientSecurity() { return StoredClientSecurity(); }

bool IsLoopbackAddress(const std::string& address) {
  absl::string_view host = address;
  // gRPC peers look like "ipv4:127.0.0.1:5000" or "ipv6:[::1]:5000".
  absl::ConsumePrefix(&host, "ipv4:");
  absl::ConsumePrefix(&host, "ipv6:");
  absl::ConsumePrefix(&host, "dns:");
  if (host == "inproc" || absl::StartsWith(host, "unix:")) return true;
  return absl::StartsWith(host, "127.") || absl::StartsWith(host, "[::1]") ||
         absl::StartsWith(host, "localhost:") || host == "localhost";
}

absl::StatusOr<std::unique_ptr<TokenAuthority>> TokenAuthority::Load(
    const std::string& path, const Clock* clock) {
  auto authority = std::make_unique<TokenAuthority>();
  authority->path_ = path;
  authority->clock_ = clock;
  if (absl::Status loaded = authority->Reload(); !loaded.ok()) return loaded;
  return authority;
}

absl::Status TokenAuthority::Reload() {
  std::ifstream in(path_);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot read the token file ", path_, "; check --token-file"));
  }
  std::map<std::string, Entry> loaded;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string where = absl::StrCat(path_, " line ", number, ": ");
    std::vector<std::string> fields =
        absl::StrSplit(line.substr(0, line.find('#')), absl::ByAnyChar(" \t"),
                       absl::SkipEmpty());
    if (fields.empty()) continue;
    if (fields.size() < 3 || fields.size() > 4) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "expected TOKEN NAME ROLES [EXPIRES]"));
    }
    if (fields[0].size() < 16) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "token of ", fields[1],
          " is shorter than 16 characters; use e.g. openssl rand -hex 32"));
    }
    Entry entry;
    entry.principal.name = fields[1];
    for (absl::string_view role : absl::StrSplit(fields[2], ',')) {
      bool known = false;
      for (const RoleName& r : kRoles) {
        if (role == r.name) {
          entry.principal.roles |= r.grants;
          known = true;
        }
      }
      if (!known) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, "unknown role \"", role,
            "\" (roles: submit, worker, cache-read, cache-write, admin)"));
      }
    }
    if (fields.size() == 4) {
      absl::Time expires;
      std::string error;
      if (!absl::ParseTime("%Y-%m-%d", fields[3], &expires, &error) &&
          !absl::ParseTime(absl::RFC3339_full, fields[3], &expires, &error)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "expiry \"", fields[3],
                         "\" is not a date (2027-01-31 or RFC 3339)"));
      }
      entry.expires_unix_ms = absl::ToUnixMillis(expires);
    }
    loaded[Sha256Hex(fields[0])] = std::move(entry);
  }
  absl::MutexLock lock(&mu_);
  by_digest_ = std::move(loaded);
  return absl::OkStatus();
}

void TokenAuthority::ReloadAndLog() {
  if (!enabled()) return;
  if (absl::Status reloaded = Reload(); !reloaded.ok()) {
    spdlog::error("reloading tokens: {}; the old tokens stay",
                  reloaded.ToString());
    return;
  }
  absl::MutexLock lock(&mu_);
  spdlog::info("reloaded {} tokens from {}", by_digest_.size(), path_);
}

absl::StatusOr<Principal> TokenAuthority::Authorize(
    const std::optional<std::string>& authorization, const std::string& peer,
    bool tls, Role role) const {
  if (!enabled()) return Principal{"", kAllRoles};
  if (!authorization) {
    return absl::UnauthenticatedError(
        "no token: this server needs one (coordctl and worker: --token-file "
        "or TESTFLEET_TOKEN)");
  }
  absl::string_view token = *authorization;
  if (!absl::ConsumePrefix(&token, "Bearer ")) {
    return absl::UnauthenticatedError(
        "the authorization header is not \"Bearer TOKEN\"");
  }
  if (!tls && !IsLoopbackAddress(peer)) {
    return absl::UnauthenticatedError(absl::StrCat(
        "tokens are refused over plaintext from ", peer,
        "; serve with --tls-cert and --tls-key, and connect with --tls-ca"));
  }
  Entry entry;
  {
    absl::MutexLock lock(&mu_);
    auto it = by_digest_.find(Sha256Hex(token));
    if (it == by_digest_.end()) {
      return absl::UnauthenticatedError(
          "unknown token: it is not in this server's token file");
    }
    entry = it->second;
  }
  if (entry.expires_unix_ms != 0 &&
      absl::ToUnixMillis(clock_->Now()) >= entry.expires_unix_ms) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the token of ", entry.principal.name, " expired on ",
        absl::FormatTime("%Y-%m-%d",
                         absl::FromUnixMillis(entry.expires_unix_ms),
                         absl::UTCTimeZone()),
        "; ask for a new one"));
  }
  if (!entry.principal.Has(role)) {
    return absl::PermissionDeniedError(
        absl::StrCat("the token of ", entry.principal.name, " (",
                     RolesOf(entry.principal.roles), ") lacks the ",
                     NameOf(role), " role this call needs"));
  }
  return entry.principal;
}

absl::StatusOr<Principal> TokenAuthority::Authorize(
    const grpc::ServerContext& context, Role role) const {
  if (!enabled()) return Principal{"", kAllRoles};
  std::optional<std::string> authorization;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it != metadata.end()) {
    authorization = std::string(it->second.data(), it->second.size());
  }
  bool tls = false;
  if (std::shared_ptr<const grpc::AuthContext> auth = context.auth_context()) {
    for (const grpc::string_ref& type :
         auth->FindPropertyValues("transport_security_type")) {
      tls = tls || type == "ssl";
    }
  }
  return Authorize(authorization, context.peer(), tls, role);
}

}  // namespace testfleet
