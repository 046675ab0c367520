#pragma once

// c2d.v1.DeployerService: records releases and their jobs, reads
// deployments, instances and volumes, and streams events and runtime logs
// live. The work itself happens in the `deploy` and `stop` jobs and in the
// reconciler.

#include <grpcpp/grpcpp.h>

#include "libs/oci/registry.h"
#include "libs/pg/listener.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/deployer.grpc.pb.h"
#include "services/deployer/config.h"
#include "services/deployer/runtime.h"

namespace c2d::deployer {

class DeployerServiceImpl final : public v1::DeployerService::Service {
 public:
  DeployerServiceImpl(Runtime& runtime);

  grpc::Status Deploy(grpc::ServerContext* context, const v1::DeployRequest* request,
                      v1::Deployment* response) override;
  grpc::Status GetDeployment(grpc::ServerContext* context, const v1::GetDeploymentRequest* request,
                             v1::Deployment* response) override;
  grpc::Status ListDeployments(grpc::ServerContext* context,
                               const v1::ListDeploymentsRequest* request,
                               v1::ListDeploymentsResponse* response) override;
  grpc::Status Rollback(grpc::ServerContext* context, const v1::RollbackRequest* request,
                        v1::Deployment* response) override;
  grpc::Status Redeploy(grpc::ServerContext* context, const v1::RedeployRequest* request,
                        v1::Deployment* response) override;
  grpc::Status StopService(grpc::ServerContext* context, const v1::StopServiceRequest* request,
                           v1::StopServiceResponse* response) override;
  grpc::Status SyncRoutes(grpc::ServerContext* context, const v1::SyncRoutesRequest* request,
                          v1::SyncRoutesResponse* response) override;
  grpc::Status ListInstances(grpc::ServerContext* context, const v1::ListInstancesRequest* request,
                             v1::ListInstancesResponse* response) override;
  grpc::Status StreamRuntimeLogs(grpc::ServerContext* context,
                                 const v1::StreamRuntimeLogsRequest* request,
                                 grpc::ServerWriter<v1::LogLine>* writer) override;
  grpc::Status StreamDeploymentEvents(grpc::ServerContext* context,
                                      const v1::StreamDeploymentEventsRequest* request,
                                      grpc::ServerWriter<v1::DeploymentEvent>* writer) override;
  grpc::Status CreateVolume(grpc::ServerContext* context, const v1::CreateVolumeRequest* request,
                            v1::Volume* response) override;
  grpc::Status ListVolumes(grpc::ServerContext* context, const v1::ListVolumesRequest* request,
                           v1::ListVolumesResponse* response) override;
  grpc::Status GetVolume(grpc::ServerContext* context, const v1::GetVolumeRequest* request,
                         v1::Volume* response) override;
  grpc::Status DeleteVolume(grpc::ServerContext* context, const v1::DeleteVolumeRequest* request,
                            v1::Volume* response) override;

 private:
  // Stores a new deployment of `d` (Deploy and Rollback).
  absl::StatusOr<v1::Deployment> Insert(const NewDeployment& d);
  // OK when repository@digest is in the registry.
  absl::Status CheckImage(const std::string& repository, const std::string& digest);

  Runtime& runtime_;
  const Config& config_;
  oci::Registry registry_;
  pg::Listener events_;
  pg::Listener logs_;
};

// Validates a DeployRequest field by field; InvalidArgument names the field.
absl::Status ValidateDeploy(const v1::DeployRequest& request, const std::string& registry_host);

}  // namespace c2d::deployer
