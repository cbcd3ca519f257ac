#include "tests/monitoring/http_get.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace remex::testing {
namespace {

// Closes the socket when the call returns.
class Socket {
 public:
  Socket() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

 private:
  const int fd_;
};

}  // namespace

absl::StatusOr<HttpResponse> HttpGet(absl::string_view address,
                                     absl::string_view path) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("bad address ", address));
  }
  const std::string host(address.substr(0, colon));
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &peer.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bad IPv4 host ", host));
  }
  Socket socket;
  const timeval timeout{.tv_sec = 10, .tv_usec = 0};
  setsockopt(socket.fd(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (connect(socket.fd(), reinterpret_cast<sockaddr*>(&peer), sizeof(peer)) !=
      0) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", address));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", address,
                   "\r\nConnection: close\r\n\r\n");
  if (write(socket.fd(), request.data(), request.size()) !=
      static_cast<ssize_t>(request.size())) {
    return absl::UnavailableError(absl::StrCat("cannot write to ", address));
  }
  std::string answer;
  char buffer[16384];
  for (ssize_t n; (n = read(socket.fd(), buffer, sizeof(buffer))) > 0;) {
    answer.append(buffer, static_cast<size_t>(n));
  }
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
  const size_t space = answer.find(' ');
  const size_t body = answer.find("\r\n\r\n");
  HttpResponse response;
  if (space == std::string::npos || body == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(answer).substr(space + 1, 3),
                        &response.status)) {
    return absl::UnavailableError(
        absl::StrCat("no HTTP answer from ", address, ": ", answer));
  }
  response.body = answer.substr(body + 4);
  return response;
}

std::string UrlEncode(absl::string_view text) {
  std::string encoded;
  for (const char c : text) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      encoded.push_back(c);
    } else {
      absl::StrAppendFormat(&encoded, "%%%02X", static_cast<unsigned char>(c));
    }
  }
  return encoded;
}

}  // namespace remex::testing
