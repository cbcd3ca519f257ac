#include "server/process/channel.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace remex::process {

namespace {

void EncodeLength(uint32_t length, char* out) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(length >> (8 * i));
}

uint32_t DecodeLength(const char* in) {
  uint32_t length = 0;
  for (int i = 0; i < 4; ++i) {
    length |= static_cast<uint32_t>(static_cast<unsigned char>(in[i]))
              << (8 * i);
  }
  return length;
}

absl::Status ErrnoStatus(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", strerror(errno)));
}

// Reads exactly `size` bytes; NOT_FOUND if the stream ends before the first
// one, DATA_LOSS if it ends after it.
absl::Status ReadFully(int fd, char* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = read(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("read from the worker channel");
    if (n == 0) {
      return done == 0 ? absl::NotFoundError("the worker channel closed")
                       : absl::DataLossError(
                             "the worker channel closed "
                             "in the middle of a message");
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteMessage(int fd,
                          const google::protobuf::MessageLite& message) {
  const size_t size = message.ByteSizeLong();
  if (size > kMaxFrameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("message of ", size,
                     " bytes is too large for the "
                     "worker channel"));
  }
  std::string frame(4 + size, '\0');
  EncodeLength(static_cast<uint32_t>(size), frame.data());
  message.SerializeWithCachedSizesToArray(
      reinterpret_cast<uint8_t*>(frame.data() + 4));
  size_t done = 0;
  while (done < frame.size()) {
    const ssize_t n =
        send(fd, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("write to the worker channel");
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ReadMessage(int fd, google::protobuf::MessageLite& message) {
  char header[4];
  if (absl::Status status = ReadFully(fd, header, 4); !status.ok()) {
    return status;
  }
  const uint32_t size = DecodeLength(header);
  if (size > kMaxFrameBytes) {
    return absl::DataLossError("worker channel frame too large");
  }
  // Grown as the bytes arrive, not to the length the header claims: a cut
  // or corrupt header must not cost up to kMaxFrameBytes at once.
  constexpr size_t kFirstChunk = size_t{1} << 20;
  std::string body;
  while (body.size() < size) {
    const size_t at = body.size();
    const size_t chunk = std::min<size_t>(size - at, std::max(kFirstChunk, at));
    body.resize(at + chunk);
    if (absl::Status status = ReadFully(fd, body.data() + at, chunk);
        !status.ok()) {
      return absl::IsNotFound(status) ? absl::DataLossError(
                                            "the worker channel closed in the "
                                            "middle of a message")
                                      : status;
    }
  }
  if (!message.ParseFromString(body)) {
    return absl::DataLossError("unparsable message on the worker channel");
  }
  return absl::OkStatus();
}

absl::Status FrameReader::ReadAvailable(int fd) {
  if (consumed_ > 0 && consumed_ * 2 >= buffer_.size()) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  char chunk[64 * 1024];
  for (;;) {
    const ssize_t n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return absl::NotFoundError("the worker channel closed");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return absl::OkStatus();
    return ErrnoStatus("read from the worker channel");
  }
}

absl::StatusOr<bool> FrameReader::Next(google::protobuf::MessageLite& message) {
  const size_t available = buffer_.size() - consumed_;
  if (available < 4) return false;
  const uint32_t size = DecodeLength(buffer_.data() + consumed_);
  if (size > kMaxFrameBytes) {
    return absl::DataLossError("worker channel frame too large");
  }
  if (available < 4 + static_cast<size_t>(size)) return false;
  if (!message.ParseFromArray(buffer_.data() + consumed_ + 4,
                              static_cast<int>(size))) {
    return absl::DataLossError("unparsable message on the worker channel");
  }
  consumed_ += 4 + size;
  return true;
}

}  // namespace remex::process
