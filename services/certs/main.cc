// c2d certs: serves c2d.v1.CertService and works the "certs" job queue.
// Its RPCs and job handlers are filled in by the certs's own work; until
// then every RPC answers UNIMPLEMENTED and no job kind is claimed.

#include "libs/rpc/process.h"
#include "proto/c2d/v1/certs.grpc.pb.h"

int main() {
  auto process = c2d::rpc::Process::Init("certs");
  if (!process.ok()) return c2d::rpc::Process::Fail(process.status());
  c2d::v1::CertService::Service service;
  (*process)->AddWorker("certs");
  return (*process)->Serve({{c2d::v1::CertService::service_full_name(), &service}});
}
