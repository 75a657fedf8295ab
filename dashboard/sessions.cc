#include "dashboard/sessions.h"

#include "common/digest.h"

namespace testfleet {

SessionStore::SessionStore(const Clock* clock, absl::Duration lifetime,
                           size_t max_sessions)
    : clock_(clock), lifetime_(lifetime), max_sessions_(max_sessions) {}

std::string SessionStore::Create(const std::string& token) {
  const std::string id = RandomHex(32);
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  for (auto it = by_digest_.begin(); it != by_digest_.end();) {
    it = it->second.expires <= now ? by_digest_.erase(it) : std::next(it);
  }
  // Full of live sessions: the one closest to expiry goes.
  if (by_digest_.size() >= max_sessions_) {
    auto oldest = by_digest_.begin();
    for (auto it = by_digest_.begin(); it != by_digest_.end(); ++it) {
      if (it->second.expires < oldest->second.expires) oldest = it;
    }
    by_digest_.erase(oldest);
  }
  by_digest_[Sha256Hex(id)] = {token, RandomHex(32), now + lifetime_};
  return id;
}

std::optional<SessionStore::Session> SessionStore::Find(
    const std::string& id) const {
  if (id.empty()) return std::nullopt;
  absl::MutexLock lock(&mu_);
  auto it = by_digest_.find(Sha256Hex(id));
  if (it == by_digest_.end() || it->second.expires <= clock_->Now()) {
    return std::nullopt;
  }
  return it->second;
}

void SessionStore::Remove(const std::string& id) {
  absl::MutexLock lock(&mu_);
  by_digest_.erase(Sha256Hex(id));
}

}  // namespace testfleet
