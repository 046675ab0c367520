// c2d deployer: serves c2d.v1.DeployerService and works the "deployer" job queue.
// Its RPCs and job handlers are filled in by the deployer's own work; until
// then every RPC answers UNIMPLEMENTED and no job kind is claimed.

#include "libs/rpc/process.h"
#include "proto/c2d/v1/deployer.grpc.pb.h"

int main() {
  auto process = c2d::rpc::Process::Init("deployer");
  if (!process.ok()) return c2d::rpc::Process::Fail(process.status());
  c2d::v1::DeployerService::Service service;
  (*process)->AddWorker("deployer");
  return (*process)->Serve({{c2d::v1::DeployerService::service_full_name(), &service}});
}
