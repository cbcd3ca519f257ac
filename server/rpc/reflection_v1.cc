#include "server/rpc/reflection_v1.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/impl/server_initializer.h>

#include <memory>
#include <utility>

#include "absl/strings/string_view.h"

namespace remex::rpc {
namespace {

namespace v1 = ::grpc::reflection::v1;
using ::google::protobuf::DescriptorPool;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::FileDescriptor;
using ::google::protobuf::FileDescriptorProto;

// Adds `file` and, recursively, the files it imports to `response`, each
// once (`seen` holds the names already sent in this answer): a client can
// then build the file's descriptors from the one answer.
void AddFileAndImports(const FileDescriptor* file,
                       v1::FileDescriptorResponse* response,
                       std::unordered_set<std::string>* seen) {
  if (!seen->insert(file->name()).second) return;
  FileDescriptorProto proto;
  file->CopyTo(&proto);
  proto.SerializeToString(response->add_file_descriptor_proto());
  for (int i = 0; i < file->dependency_count(); ++i) {
    AddFileAndImports(file->dependency(i), response, seen);
  }
}

grpc::Status FileResponse(const FileDescriptor* file,
                          absl::string_view not_found,
                          v1::ServerReflectionResponse* response) {
  if (file == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, std::string(not_found));
  }
  std::unordered_set<std::string> seen;
  AddFileAndImports(file, response->mutable_file_descriptor_response(), &seen);
  return grpc::Status::OK;
}

// Registers the service when the server is built and hands it the server's
// service list once every service is registered.
class ReflectionV1Plugin final : public grpc::ServerBuilderPlugin {
 public:
  std::string name() override { return "remex_reflection_v1"; }
  void InitServer(grpc::ServerInitializer* si) override {
    si->RegisterService(service_);
  }
  void Finish(grpc::ServerInitializer* si) override {
    service_->SetServiceList(si->GetServiceList());
  }
  void ChangeArguments(const std::string& name, void* value) override {}
  bool has_sync_methods() const override { return true; }
  bool has_async_methods() const override { return false; }

 private:
  std::shared_ptr<ReflectionV1Service> service_ =
      std::make_shared<ReflectionV1Service>();
};

// A builder option only to add the plugin to one builder (gRPC's own
// plugin registers itself for every builder of the process).
class ReflectionV1Option final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments* args) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>*
                         plugins) override {
    plugins->push_back(std::make_unique<ReflectionV1Plugin>());
  }
};

}  // namespace

grpc::Status ReflectionV1Service::ServerReflectionInfo(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::ServerReflectionResponse,
                             v1::ServerReflectionRequest>* stream) {
  v1::ServerReflectionRequest request;
  while (stream->Read(&request)) {
    v1::ServerReflectionResponse response;
    const grpc::Status status = Answer(request, &response);
    if (!status.ok()) {
      response.clear_message_response();
      v1::ErrorResponse* error = response.mutable_error_response();
      error->set_error_code(status.error_code());
      error->set_error_message(status.error_message());
    }
    response.set_valid_host(request.host());
    *response.mutable_original_request() = request;
    if (!stream->Write(response)) break;
  }
  return grpc::Status::OK;
}

grpc::Status ReflectionV1Service::Answer(
    const v1::ServerReflectionRequest& request,
    v1::ServerReflectionResponse* response) {
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  switch (request.message_request_case()) {
    case v1::ServerReflectionRequest::kFileByFilename:
      return FileResponse(pool->FindFileByName(request.file_by_filename()),
                          "File not found.", response);
    case v1::ServerReflectionRequest::kFileContainingSymbol:
      return FileResponse(
          pool->FindFileContainingSymbol(request.file_containing_symbol()),
          "Symbol not found.", response);
    case v1::ServerReflectionRequest::kFileContainingExtension: {
      const v1::ExtensionRequest& extension =
          request.file_containing_extension();
      const auto* type =
          pool->FindMessageTypeByName(extension.containing_type());
      if (type == nullptr) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "Type not found.");
      }
      const FieldDescriptor* field =
          pool->FindExtensionByNumber(type, extension.extension_number());
      return FileResponse(field == nullptr ? nullptr : field->file(),
                          "Extension not found.", response);
    }
    case v1::ServerReflectionRequest::kAllExtensionNumbersOfType: {
      const std::string& name = request.all_extension_numbers_of_type();
      const auto* type = pool->FindMessageTypeByName(name);
      if (type == nullptr) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "Type not found.");
      }
      std::vector<const FieldDescriptor*> extensions;
      pool->FindAllExtensions(type, &extensions);
      v1::ExtensionNumberResponse* numbers =
          response->mutable_all_extension_numbers_response();
      numbers->set_base_type_name(name);
      for (const FieldDescriptor* field : extensions) {
        numbers->add_extension_number(field->number());
      }
      return grpc::Status::OK;
    }
    case v1::ServerReflectionRequest::kListServices: {
      if (services_ == nullptr) {
        return grpc::Status(grpc::StatusCode::CANCELLED,
                            "Service list not available.");
      }
      v1::ListServiceResponse* list =
          response->mutable_list_services_response();
      for (const std::string& service : *services_) {
        list->add_service()->set_name(service);
      }
      return grpc::Status::OK;
    }
    default:
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                          "Unknown reflection request.");
  }
}

void AddReflectionV1(grpc::ServerBuilder& builder) {
  builder.SetOption(std::make_unique<ReflectionV1Option>());
}

}  // namespace remex::rpc
