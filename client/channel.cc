#include "client/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <string>

namespace remex::client {

std::shared_ptr<grpc::Channel> MakeChannel(std::string_view address) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(kMaxMessageBytes);
  arguments.SetMaxSendMessageSize(kMaxMessageBytes);
  return grpc::CreateCustomChannel(
      std::string(address), grpc::InsecureChannelCredentials(), arguments);
}

}  // namespace remex::client
