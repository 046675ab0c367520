// c2d builder: serves c2d.v1.BuilderService and works the "builder" job queue.
// Its RPCs and job handlers are filled in by the builder's own work; until
// then every RPC answers UNIMPLEMENTED and no job kind is claimed.

#include "libs/rpc/process.h"
#include "proto/c2d/v1/builder.grpc.pb.h"

int main() {
  auto process = c2d::rpc::Process::Init("builder");
  if (!process.ok()) return c2d::rpc::Process::Fail(process.status());
  c2d::v1::BuilderService::Service service;
  (*process)->AddWorker("builder");
  return (*process)->Serve({{c2d::v1::BuilderService::service_full_name(), &service}});
}
