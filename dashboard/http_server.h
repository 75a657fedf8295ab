#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
class Response;
}  // namespace httplib

namespace testfleet {

/// One HTTP request, as read by HttpServer. Header names are lower case.
struct HttpRequest {
  std::string method;
  std::string path;   // decoded, without the query
  std::string query;  // raw, without '?'
  std::string body;
  std::map<std::string, std::string> headers;
  std::string remote_address;  // "ipv4:127.0.0.1:43210", as gRPC names peers
  bool tls = false;

  std::string Header(const std::string& lower_case_name) const;
  /// A query parameter, decoded; empty when absent.
  std::string Param(const std::string& name) const;
  /// A form field of an application/x-www-form-urlencoded body.
  std::string FormField(const std::string& name) const;
  std::string Cookie(const std::string& name) const;
};

/// A live answer's writer: false once the client is gone.
using StreamWrite = std::function<bool(const std::string& data)>;

/// Answers one request: Send once, or Stream, whose `writer` runs after the
/// handler returns, on the request's thread, writing until it returns (for
/// Server-Sent Events).
class HttpResponder {
 public:
  using Headers = std::map<std::string, std::string>;
  explicit HttpResponder(httplib::Response& response) : response_(response) {}
  void Send(int status, const std::string& content_type,
            const std::string& body, const Headers& headers = {});
  void Stream(const std::string& content_type,
              std::function<void(const StreamWrite& write)> writer);
  bool sent() const { return sent_; }

 private:
  httplib::Response& response_;
  bool sent_ = false;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponder&)>;

struct HttpServerOptions {
  std::string listen;  // HOST:PORT; port 0 picks one
  /// PEM files: with both, HTTPS only.
  std::string cert_file;
  std::string key_file;
  /// Requests handled at once; a Server-Sent Events stream holds one.
  int threads = 64;
  /// Bodies larger than this are refused (413).
  int64_t max_body_bytes = 64 << 10;
};

/// An HTTP/1.1 server (cpp-httplib) that hands every request to one
/// handler, each on one of `threads` threads.
class HttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const HttpServerOptions& options, HttpHandler handler);
  ~HttpServer();  // stops: waits for handlers and streams to return

  int port() const { return port_; }
  bool tls() const { return tls_; }

 private:
  HttpServer() = default;

  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;
  int port_ = 0;
  bool tls_ = false;
};

/// Percent-decodes a URL component ('+' as space when `form`).
std::string UrlDecode(const std::string& text, bool form);
std::string UrlEncode(const std::string& text);

}  // namespace testfleet
