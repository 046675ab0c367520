// c2d gateway: the REST front door (users, projects, services, env vars,
// webhooks, audit log), a gRPC client of the other five services. It serves
// gRPC only for health, and owns no job queue.

#include "libs/rpc/process.h"

int main() {
  auto process = c2d::rpc::Process::Init("gateway");
  if (!process.ok()) return c2d::rpc::Process::Fail(process.status());
  return (*process)->Serve({});
}
