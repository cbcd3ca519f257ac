// A file of the executor core that includes gRPC: check_includes must fail.
#include <grpcpp/grpcpp.h>
