#pragma once

// c2d.v1.BuilderService: starts, reads, lists and cancels builds, and streams
// their logs live. The work itself happens in the `build` job.

#include <grpcpp/grpcpp.h>

#include "libs/pg/listener.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/builder.grpc.pb.h"
#include "services/builder/config.h"

namespace c2d::builder {

class BuilderServiceImpl final : public v1::BuilderService::Service {
 public:
  BuilderServiceImpl(pg::Pool& pool, const Config& config);

  grpc::Status StartBuild(grpc::ServerContext* context, const v1::StartBuildRequest* request,
                          v1::StartBuildResponse* response) override;
  grpc::Status GetBuild(grpc::ServerContext* context, const v1::GetBuildRequest* request,
                        v1::Build* response) override;
  grpc::Status ListBuilds(grpc::ServerContext* context, const v1::ListBuildsRequest* request,
                          v1::ListBuildsResponse* response) override;
  grpc::Status CancelBuild(grpc::ServerContext* context, const v1::CancelBuildRequest* request,
                           v1::Build* response) override;
  // Runs on its own gRPC thread for the life of the stream; ends when the
  // client goes away or the build is final and fully sent.
  grpc::Status StreamBuildLogs(grpc::ServerContext* context,
                               const v1::StreamBuildLogsRequest* request,
                               grpc::ServerWriter<v1::LogLine>* writer) override;

 private:
  pg::Pool& pool_;
  const Config& config_;
  pg::Listener listener_;
};

// Validates a StartBuildRequest field by field; InvalidArgument names the field.
absl::Status ValidateStartBuild(const v1::StartBuildRequest& request,
                                const std::string& local_repo_root);

}  // namespace c2d::builder
