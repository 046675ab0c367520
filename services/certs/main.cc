// c2d certs: will serve c2d.v1.CertService and work the "certs" job queue. Until its
// RPCs exist it registers no gRPC service, so health reports
// c2d.v1.CertService as unknown (not SERVING) and calls answer UNIMPLEMENTED;
// its worker claims no job kind yet.

#include "libs/rpc/process.h"

int main() {
  auto process = c2d::rpc::Process::Init("certs");
  if (!process.ok()) return c2d::rpc::Process::Fail(process.status());
  (*process)->AddWorker("certs");
  return (*process)->Serve({});
}
