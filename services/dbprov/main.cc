// c2d dbprov: serves c2d.v1.DatabaseService and works the "dbprov" job queue.
// Its RPCs and job handlers are filled in by the dbprov's own work; until
// then every RPC answers UNIMPLEMENTED and no job kind is claimed.

#include "libs/rpc/process.h"
#include "proto/c2d/v1/dbprov.grpc.pb.h"

int main() {
  auto process = c2d::rpc::Process::Init("dbprov");
  if (!process.ok()) return c2d::rpc::Process::Fail(process.status());
  c2d::v1::DatabaseService::Service service;
  (*process)->AddWorker("dbprov");
  return (*process)->Serve({{c2d::v1::DatabaseService::service_full_name(), &service}});
}
