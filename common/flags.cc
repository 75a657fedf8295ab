#include "common/flags.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/units.h"

namespace testfleet {

CLI::Validator DurationValidator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        auto parsed = ParseDuration(value);
        return parsed.ok() ? "" : std::string(parsed.status().message());
      },
      "DURATION");
}

CLI::Validator SizeValidator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        auto parsed = ParseSize(value);
        return parsed.ok() ? "" : std::string(parsed.status().message());
      },
      "SIZE");
}

void AddServerSecurityFlags(CLI::App& app, TlsConfig& tls,
                            std::string& token_file) {
  app.add_option("--tls-cert", tls.cert_file, "serve TLS with this certificate")
      ->envname("TESTFLEET_TLS_CERT");
  app.add_option("--tls-key", tls.key_file, "the certificate's private key")
      ->envname("TESTFLEET_TLS_KEY");
  app.add_option("--tls-ca", tls.ca_file,
                 "CA of client certificates (and of servers this one calls)")
      ->envname("TESTFLEET_TLS_CA");
  app.add_flag("--require-client-cert", tls.require_client_cert,
               "mutual TLS: refuse clients without a certificate --tls-ca "
               "signed");
  app.add_option("--token-file", token_file,
                 "tokens and their roles; callers must present one (reloaded "
                 "on SIGHUP)");
}

void AddClientSecurityFlags(CLI::App& app, ClientSecurity& security,
                            std::string& token_file) {
  app.add_option("--tls-ca", security.tls.ca_file,
                 "connect over TLS, trusting servers this CA signed")
      ->envname("TESTFLEET_TLS_CA");
  app.add_option("--tls-cert", security.tls.cert_file,
                 "client certificate, for servers requiring one")
      ->envname("TESTFLEET_TLS_CERT");
  app.add_option("--tls-key", security.tls.key_file,
                 "the client certificate's private key")
      ->envname("TESTFLEET_TLS_KEY");
  app.add_option("--token-file", token_file,
                 "file holding the token to present (default: "
                 "$TESTFLEET_TOKEN)");
}

absl::Status InstallClientSecurity(ClientSecurity security,
                                   const std::string& token_file) {
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in || !(in >> security.token)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--token-file: cannot read a token from ", token_file));
    }
  } else if (const char* env = std::getenv("TESTFLEET_TOKEN")) {
    security.token = env;
  }
  return SetClientSecurity(std::move(security));
}

absl::StatusOr<std::string> ReadSigningKey(const std::string& path) {
  if (path.empty()) return std::string();
  std::ifstream in(path, std::ios::binary);
  std::stringstream key;
  key << in.rdbuf();
  if (!in || key.str().size() < 16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--cache-signing-key: cannot read a key of at least 16 bytes from ",
        path, " (make one with: openssl rand -hex 32 > FILE)"));
  }
  return std::string(absl::StripTrailingAsciiWhitespace(key.str()));
}

absl::Duration DurationFlag(const std::string& text) {
  return ParseDuration(text).value_or(absl::ZeroDuration());
}

int64_t SizeFlag(const std::string& text) {
  return ParseSize(text).value_or(0);
}

}  // namespace testfleet
