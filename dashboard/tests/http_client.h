#pragma once
// An HTTP/1.1 client for tests (cpp-httplib's), over loopback.

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "httplib.h"

namespace testfleet::testing {

struct HttpAnswer {
  int status = 0;  // 0: no answer (the error says why)
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string error;
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

inline std::unique_ptr<httplib::ClientImpl> MakeClient(int port, bool tls) {
  std::unique_ptr<httplib::ClientImpl> client;
  if (tls) {
    auto secure = std::make_unique<httplib::SSLClient>("127.0.0.1", port);
    secure->enable_server_certificate_verification(false);  // a test CA
    client = std::move(secure);
  } else {
    client = std::make_unique<httplib::ClientImpl>("127.0.0.1", port);
  }
  client->set_connection_timeout(10);
  client->set_read_timeout(30);
  return client;
}

inline httplib::Request MakeRequest(
    const std::string& method, const std::string& target,
    const std::map<std::string, std::string>& headers,
    const std::string& body) {
  httplib::Request request;
  request.method = method;
  request.path = target;
  for (const auto& [name, value] : headers) request.set_header(name, value);
  request.body = body;
  return request;
}

inline void Keep(const httplib::Response& response, HttpAnswer& answer) {
  answer.status = response.status;
  for (const auto& [name, value] : response.headers) {
    answer.headers[absl::AsciiStrToLower(name)] = value;
  }
}

inline HttpAnswer Fetch(int port, const std::string& method,
                        const std::string& target,
                        const std::map<std::string, std::string>& headers = {},
                        const std::string& body = "", bool tls = false) {
  HttpAnswer answer;
  std::unique_ptr<httplib::ClientImpl> client = MakeClient(port, tls);
  httplib::Result result =
      client->send(MakeRequest(method, target, headers, body));
  if (!result) {
    answer.error = httplib::to_string(result.error());
    return answer;
  }
  Keep(*result, answer);
  answer.body = result->body;
  return answer;
}

/// A request whose answer is read as it comes (Server-Sent Events), on a
/// thread of its own.
class HttpStream {
 public:
  HttpStream(int port, const std::string& target) {
    client_ = MakeClient(port, false);
    reader_ = std::thread([this, target] {
      httplib::Request request = MakeRequest("GET", target, {}, "");
      request.response_handler = [this](const httplib::Response& response) {
        absl::MutexLock lock(&mu_);
        Keep(response, answer_);
        return true;
      };
      request.content_receiver = [this](const char* data, size_t size, uint64_t,
                                        uint64_t) {
        absl::MutexLock lock(&mu_);
        answer_.body.append(data, size);
        return !closing_;
      };
      httplib::Result result = client_->send(request);
      absl::MutexLock lock(&mu_);
      if (!result) answer_.error = httplib::to_string(result.error());
      done_ = true;
    });
  }
  ~HttpStream() {
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
    }
    client_->stop();
    reader_.join();
  }

  /// Waits up to `timeout` for the headers.
  HttpAnswer Head(absl::Duration timeout = absl::Seconds(20)) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return answer_.status != 0 || done_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    return answer_;
  }
  /// Waits up to `timeout` until the body holds `text`.
  bool ReadUntil(const std::string& text,
                 absl::Duration timeout = absl::Seconds(30)) {
    absl::MutexLock lock(&mu_);
    auto found = [this, &text]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return absl::StrContains(answer_.body, text) || done_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&found), timeout);
    return absl::StrContains(answer_.body, text);
  }
  std::string body() {
    absl::MutexLock lock(&mu_);
    return answer_.body;
  }

 private:
  std::unique_ptr<httplib::ClientImpl> client_;
  absl::Mutex mu_;
  HttpAnswer answer_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reader_;
};

}  // namespace testfleet::testing
