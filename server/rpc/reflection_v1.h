// Server reflection v1 (grpc.reflection.v1.ServerReflection), served beside
// the v1alpha service of gRPC's reflection plugin: Debian's gRPC 1.51 serves
// only v1alpha, and clients that speak v1 (newer grpcurl, Postman, grpcui)
// get UNIMPLEMENTED from it.
#ifndef REMEX_SERVER_RPC_REFLECTION_V1_H_
#define REMEX_SERVER_RPC_REFLECTION_V1_H_

#include <grpcpp/grpcpp.h>

#include <string>
#include <unordered_set>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"

namespace remex::rpc {

// Answers v1 reflection requests as gRPC's v1alpha service answers them (the
// messages are the same field for field): files from the generated
// descriptor pool, each with the files it imports, and the services the
// server registered.
//
// Thread-safe once the service list is set: every stream only reads.
class ReflectionV1Service final
    : public grpc::reflection::v1::ServerReflection::Service {
 public:
  // The names of the services the server serves. Not owned; must outlive
  // this; only read after the server started. Set before the server starts.
  void SetServiceList(const std::vector<std::string>* services) {
    services_ = services;
  }

  grpc::Status ServerReflectionInfo(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<grpc::reflection::v1::ServerReflectionResponse,
                               grpc::reflection::v1::ServerReflectionRequest>*
          stream) override;

 private:
  grpc::Status Answer(
      const grpc::reflection::v1::ServerReflectionRequest& request,
      grpc::reflection::v1::ServerReflectionResponse* response);

  const std::vector<std::string>* services_ = nullptr;
};

// Makes the server that `builder` builds serve ReflectionV1Service, listing
// every service that server registers (those added by plugins included).
void AddReflectionV1(grpc::ServerBuilder& builder);

}  // namespace remex::rpc

#endif  // REMEX_SERVER_RPC_REFLECTION_V1_H_
