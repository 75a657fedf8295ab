#pragma once

#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/security.h"

namespace testfleet {

/// CLI11 validators for our duration and size syntax, so a bad value is
/// refused with our message before anything starts.
CLI::Validator DurationValidator();
CLI::Validator SizeValidator();

/// Server TLS and token flags: --tls-cert, --tls-key, --tls-ca,
/// --require-client-cert, --token-file (the table of tokens and roles).
void AddServerSecurityFlags(CLI::App& app, TlsConfig& tls,
                            std::string& token_file);
/// Client TLS and token flags: --tls-ca, --tls-cert, --tls-key,
/// --token-file (a file holding this client's token; else the
/// TESTFLEET_TOKEN variable). Each also reads TESTFLEET_TLS_CA and so on.
void AddClientSecurityFlags(CLI::App& app, ClientSecurity& security,
                            std::string& token_file);
/// Reads the token (file, else TESTFLEET_TOKEN) and installs the client
/// security for every channel of the process.
absl::Status InstallClientSecurity(ClientSecurity security,
                                   const std::string& token_file);
/// The fleet key for signing cache entries, from --cache-signing-key's file
/// ("" when no file is named).
absl::StatusOr<std::string> ReadSigningKey(const std::string& path);

/// Parse values that already passed the validators above.
absl::Duration DurationFlag(const std::string& text);
int64_t SizeFlag(const std::string& text);

}  // namespace testfleet
