#include "common/security.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>

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
constexpr uint32_t kAllRoles = 63;
constexpr RoleName kRoles[] = {
    {"submit", Role::kSubmit, 1},
    {"worker", Role::kWorker, 2 | 4 | 8},
    {"cache-read", Role::kCacheRead, 4},
    {"cache-write", Role::kCacheWrite, 4 | 8},
    {"admin", Role::kAdmin, kAllRoles},
    {"view", Role::kView, 32},
};
constexpr uint32_t kReaderRoles =
    static_cast<uint32_t>(Role::kSubmit) | static_cast<uint32_t>(Role::kView);

bool IsLoopback(const in_addr& v4) { return (ntohl(v4.s_addr) >> 24) == 127; }
bool IsLoopback(const in6_addr& v6) {
  return IN6_IS_ADDR_LOOPBACK(&v6) ||
         (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
}

// A numeric address: whether it is loopback; nullopt for a name.
std::optional<bool> IsLoopbackIp(const std::string& host) {
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return IsLoopback(v4);
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IsLoopback(v6);
  return std::nullopt;
}

// The host part of "HOST:PORT", "[V6]:PORT", "ipv4:HOST:PORT" or
// "dns:///HOST:PORT"; empty when there is none.
std::string HostOf(absl::string_view address) {
  for (absl::string_view scheme : {"ipv4:", "ipv6:", "dns:///", "dns:"}) {
    if (absl::ConsumePrefix(&address, scheme)) break;
  }
  if (absl::ConsumePrefix(&address, "[")) {
    const size_t end = address.find(']');
    return end == absl::string_view::npos ? std::string()
                                          : std::string(address.substr(0, end));
  }
  const size_t colon = address.rfind(':');
  if (colon != absl::string_view::npos) address = address.substr(0, colon);
  return std::string(address);
}

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
  if (address == "inproc" || absl::StartsWith(address, "unix:")) return true;
  const std::string host = HostOf(address);
  if (host.empty()) return false;
  if (std::optional<bool> numeric = IsLoopbackIp(host)) return *numeric;
  // A name: loopback only if everything it resolves to is.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return false;
  bool loopback = found != nullptr;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const bool is_loopback =
        a->ai_family == AF_INET
            ? IsLoopback(reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
        : a->ai_family == AF_INET6
            ? IsLoopback(reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr)
            : false;
    loopback = loopback && is_loopback;
  }
  freeaddrinfo(found);
  return loopback;
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() &&
         CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Principal Principal::Anyone() { return Principal{"", kAllRoles}; }

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
  std::map<std::string, int> line_of;  // token digest -> line
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string where = absl::StrCat(path_, " line ", number, ": ");
    // Any white space separates, a Windows line end included: "submit\r"
    // would otherwise be a role nobody can see.
    std::vector<std::string> fields =
        absl::StrSplit(line.substr(0, line.find('#')),
                       absl::ByAnyChar(" \t\r\v\f"), absl::SkipEmpty());
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
        return absl::InvalidArgumentError(
            absl::StrCat(where, "unknown role \"", role,
                         "\" (roles: submit, view, worker, cache-read, "
                         "cache-write, admin)"));
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
    const std::string digest = Sha256Hex(fields[0]);
    if (auto [it, fresh] = line_of.emplace(digest, number); !fresh) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "the token of ", fields[1], " is also on line ",
                       it->second, "; give every name its own token"));
    }
    loaded[digest] = std::move(entry);
  }
  if (loaded.empty()) {
    spdlog::warn(
        "token file {} holds no tokens: every call will be refused; add "
        "lines \"TOKEN NAME ROLES\"",
        path_);
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
  return AuthorizeAny(authorization, peer, tls, static_cast<uint32_t>(role),
                      NameOf(role));
}

absl::StatusOr<Principal> TokenAuthority::AuthorizeAny(
    const std::optional<std::string>& authorization, const std::string& peer,
    bool tls, uint32_t any_of, const std::string& needed) const {
  if (!enabled()) return Principal::Anyone();
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
  if ((entry.principal.roles & any_of) == 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("the token of ", entry.principal.name, " (",
                     RolesOf(entry.principal.roles), ") lacks the ", needed,
                     " role this call needs"));
  }
  return entry.principal;
}

absl::StatusOr<Principal> TokenAuthority::Authorize(
    const grpc::ServerContextBase& context, Role role) const {
  return AuthorizeCall(context, static_cast<uint32_t>(role), NameOf(role));
}

absl::StatusOr<Principal> TokenAuthority::AuthorizeReader(
    const grpc::ServerContextBase& context) const {
  return AuthorizeCall(context, kReaderRoles, "submit or view");
}

absl::StatusOr<Principal> TokenAuthority::AuthorizeReader(
    const std::optional<std::string>& authorization, const std::string& peer,
    bool tls) const {
  return AuthorizeAny(authorization, peer, tls, kReaderRoles, "submit or view");
}

absl::StatusOr<Principal> TokenAuthority::AuthorizeCall(
    const grpc::ServerContextBase& context, uint32_t any_of,
    const std::string& needed) const {
  if (!enabled()) return Principal::Anyone();
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
  return AuthorizeAny(authorization, context.peer(), tls, any_of, needed);
}

}  // namespace testfleet
