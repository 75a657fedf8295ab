#pragma once

#include <map>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace testfleet {

/// Dashboard logins: a token given once at the login page becomes a session
/// whose random id travels in an HttpOnly cookie. The token itself stays on
/// the server and is checked again on every request, so a token removed
/// from the token file (SIGHUP) or past its expiry stops its sessions at
/// once. Each session has its own cross-site request token (CSRF) that
/// state-changing requests must echo in a header.
class SessionStore {
 public:
  struct Session {
    std::string token;
    std::string csrf;
    absl::Time expires;
  };
  explicit SessionStore(const Clock* clock = RealClock::Get(),
                        absl::Duration lifetime = absl::Hours(12),
                        size_t max_sessions = 100'000);

  /// A new session for `token`; returns its id (the cookie's value).
  std::string Create(const std::string& token);
  /// The live session with this id.
  std::optional<Session> Find(const std::string& id) const;
  void Remove(const std::string& id);

  absl::Duration lifetime() const { return lifetime_; }

 private:
  const Clock* clock_;
  const absl::Duration lifetime_;
  const size_t max_sessions_;
  mutable absl::Mutex mu_;
  // By the SHA-256 of the id: a lookup's timing tells nothing of live ids.
  std::map<std::string, Session> by_digest_ ABSL_GUARDED_BY(mu_);
};

}  // namespace testfleet
