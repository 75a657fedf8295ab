#include "dashboard/http_server.h"

#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "httplib.h"
#include "spdlog/spdlog.h"

namespace testfleet {
namespace {

// The value of `name` among "a=1&b=2" pairs, decoded.
std::string PairValue(const std::string& pairs, const std::string& name,
                      bool form) {
  for (absl::string_view pair : absl::StrSplit(pairs, '&')) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    if (UrlDecode(std::string(kv.first), form) == name) {
      return UrlDecode(std::string(kv.second), form);
    }
  }
  return "";
}

// "127.0.0.1" -> "ipv4:127.0.0.1:PORT", the peer form TokenAuthority reads.
std::string PeerName(const std::string& address, int port) {
  const bool v6 = address.find(':') != std::string::npos;
  return v6 ? absl::StrCat("ipv6:[", address, "]:", port)
            : absl::StrCat("ipv4:", address, ":", port);
}

void SetCommonHeaders(httplib::Response& response,
                      const HttpResponder::Headers& headers) {
  response.set_header("Cache-Control", "no-store");
  response.set_header("X-Content-Type-Options", "nosniff");
  response.set_header("Referrer-Policy", "no-referrer");
  for (const auto& [name, value] : headers) response.set_header(name, value);
}

}  // namespace

std::string UrlDecode(const std::string& text, bool form) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%' && i + 2 < text.size() &&
        absl::ascii_isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        absl::ascii_isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      int value = 0;
      absl::SimpleHexAtoi(text.substr(i + 1, 2), &value);
      out.push_back(static_cast<char>(value));
      i += 2;
    } else if (c == '+' && form) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string UrlEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' ||
        c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kDigits[] = "0123456789ABCDEF";
      out.push_back('%');
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 15]);
    }
  }
  return out;
}

std::string HttpRequest::Header(const std::string& lower_case_name) const {
  auto it = headers.find(lower_case_name);
  return it == headers.end() ? "" : it->second;
}

std::string HttpRequest::Param(const std::string& name) const {
  return PairValue(query, name, /*form=*/true);
}

std::string HttpRequest::FormField(const std::string& name) const {
  return PairValue(body, name, /*form=*/true);
}

std::string HttpRequest::Cookie(const std::string& name) const {
  for (absl::string_view part : absl::StrSplit(Header("cookie"), ';')) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(
        absl::StripAsciiWhitespace(part), absl::MaxSplits('=', 1));
    if (kv.first == name) return std::string(kv.second);
  }
  return "";
}

void HttpResponder::Send(int status, const std::string& content_type,
                         const std::string& body, const Headers& headers) {
  sent_ = true;
  response_.status = status;
  SetCommonHeaders(response_, headers);
  response_.set_content(body, content_type.c_str());
}

void HttpResponder::Stream(
    const std::string& content_type,
    std::function<void(const StreamWrite& write)> writer) {
  sent_ = true;
  response_.status = 200;
  SetCommonHeaders(response_, {});
  response_.set_chunked_content_provider(
      content_type,
      [writer = std::move(writer)](size_t, httplib::DataSink& sink) {
        writer([&sink](const std::string& data) {
          return sink.is_writable() && sink.write(data.data(), data.size());
        });
        sink.done();
        return true;
      });
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HttpServerOptions& options, HttpHandler handler) {
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->tls_ = !options.cert_file.empty() && !options.key_file.empty();
  if (server->tls_) {
    auto tls = std::make_unique<httplib::SSLServer>(options.cert_file.c_str(),
                                                    options.key_file.c_str());
    if (!tls->is_valid()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the dashboard cannot use the certificate ",
                       options.cert_file, " with the key ", options.key_file,
                       ": unreadable, not PEM, or they do not match"));
    }
    // TLS 1.2 and later only.
    SSL_CTX_set_min_proto_version(tls->ssl_context(), TLS1_2_VERSION);
    server->server_ = std::move(tls);
  } else {
    server->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& http = *server->server_;
  const size_t threads = static_cast<size_t>(std::max(2, options.threads));
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(static_cast<size_t>(options.max_body_bytes));
  const bool tls = server->tls_;
  auto dispatch = [handler = std::move(handler), tls](
                      const httplib::Request& in, httplib::Response& out) {
    HttpRequest request;
    request.method = in.method;
    request.path = in.path;
    const size_t question = in.target.find('?');
    if (question != std::string::npos)
      request.query = in.target.substr(question + 1);
    request.body = in.body;
    request.remote_address = PeerName(in.remote_addr, in.remote_port);
    request.tls = tls;
    for (const auto& [name, value] : in.headers) {
      request.headers[absl::AsciiStrToLower(name)] = value;
    }
    HttpResponder responder(out);
    handler(request, responder);
    if (!responder.sent()) {
      responder.Send(500, "text/plain; charset=utf-8", "no answer\n");
    }
  };
  http.Get(".*", dispatch);
  http.Post(".*", dispatch);
  http.Put(".*", dispatch);
  http.Delete(".*", dispatch);
  http.Patch(".*", dispatch);
  const size_t colon = options.listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(options.listen.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http-listen=", options.listen, " is not HOST:PORT"));
  }
  std::string host = options.listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  server->port_ = port == 0 ? http.bind_to_any_port(host)
                            : (http.bind_to_port(host, port) ? port : -1);
  if (server->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve the dashboard on ", options.listen,
        ": the address is in use or not this machine's; choose a free "
        "HOST:PORT for --http-listen"));
  }
  server->listener_ = std::thread([&http] { http.listen_after_bind(); });
  // Running before Start returns: a stop() that came first would be lost.
  for (int i = 0; i < 2000 && !http.is_running(); ++i) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  return server;
}

HttpServer::~HttpServer() {
  if (server_) server_->stop();
  if (listener_.joinable()) listener_.join();
}

}  // namespace testfleet
