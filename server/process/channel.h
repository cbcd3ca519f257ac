// Framing of the worker channel (protos/remex/worker/v1/worker.proto): each
// message is a 4-byte little-endian length and the serialized bytes.
#ifndef REMEX_SERVER_PROCESS_CHANNEL_H_
#define REMEX_SERVER_PROCESS_CHANNEL_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"

namespace remex::process {

// Frames larger than this are refused (a corrupt or hostile peer).
inline constexpr uint32_t kMaxFrameBytes = 1u << 30;

// Writes one framed message to `fd`, blocking until all of it is written.
// Never raises SIGPIPE. UNAVAILABLE if the peer is gone.
absl::Status WriteMessage(int fd, const google::protobuf::MessageLite& message);

// Reads one framed message from blocking `fd` into `message`. NOT_FOUND at
// a clean end of stream (the peer closed it between messages); DATA_LOSS for
// a cut or unparsable frame; UNAVAILABLE for a read error.
absl::Status ReadMessage(int fd, google::protobuf::MessageLite& message);

// Collects frames from a non-blocking reader.
//
// Thread-compatible; owned by whoever reads the fd.
class FrameReader {
 public:
  // Reads what `fd` has now without blocking. Returns NOT_FOUND once the
  // peer closed the stream, UNAVAILABLE on a read error, OK otherwise.
  absl::Status ReadAvailable(int fd);
  // Moves the next whole frame into `message`: true if there was one;
  // DATA_LOSS for a frame that does not parse or is too large.
  absl::StatusOr<bool> Next(google::protobuf::MessageLite& message);

 private:
  std::string buffer_;
  size_t consumed_ = 0;
};

}  // namespace remex::process

#endif  // REMEX_SERVER_PROCESS_CHANNEL_H_
