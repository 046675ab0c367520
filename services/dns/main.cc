// c2d dns: serves c2d.v1.DnsService and works the "dns" job queue.
// Its RPCs and job handlers are filled in by the dns's own work; until
// then every RPC answers UNIMPLEMENTED and no job kind is claimed.

#include "libs/rpc/process.h"
#include "proto/c2d/v1/dns.grpc.pb.h"

int main() {
  auto process = c2d::rpc::Process::Init("dns");
  if (!process.ok()) return c2d::rpc::Process::Fail(process.status());
  c2d::v1::DnsService::Service service;
  (*process)->AddWorker("dns");
  return (*process)->Serve({{c2d::v1::DnsService::service_full_name(), &service}});
}
