// ArenaMessage: a protobuf message on an arena of its own, reused batch
// after batch.
#ifndef REMEX_SERVER_RPC_ARENA_MESSAGE_H_
#define REMEX_SERVER_RPC_ARENA_MESSAGE_H_

#include <google/protobuf/arena.h>

namespace remex::rpc {

// A message on an arena of its own that is reset after each use, so that a
// batch of a thousand tasks costs a few block allocations rather than
// several per task. Not thread-safe; owns the message.
template <class Message>
class ArenaMessage {
 public:
  ArenaMessage() : arena_(Options()) { Reset(); }
  ArenaMessage(const ArenaMessage&) = delete;
  ArenaMessage& operator=(const ArenaMessage&) = delete;

  Message& operator*() { return *message_; }
  Message* operator->() { return message_; }
  Message* get() { return message_; }
  // Frees the message and everything it held; makes a new, empty one.
  void Reset() {
    arena_.Reset();
    message_ = google::protobuf::Arena::CreateMessage<Message>(&arena_);
  }

 private:
  static google::protobuf::ArenaOptions Options() {
    google::protobuf::ArenaOptions options;
    options.start_block_size = 4 << 10;
    options.max_block_size = 256 << 10;
    return options;
  }

  google::protobuf::Arena arena_;
  Message* message_ = nullptr;
};

}  // namespace remex::rpc

#endif  // REMEX_SERVER_RPC_ARENA_MESSAGE_H_
