// c2d builder: serves c2d.v1.BuilderService and works the "builder" queue
// (`build`, `gc_images`); its leader schedules image GC.

#include "libs/rpc/process.h"
#include "services/builder/build_job.h"
#include "services/builder/builder_service.h"
#include "services/builder/config.h"
#include "services/builder/gc_job.h"

int main() {
  using namespace c2d;
  auto process = rpc::Process::Init("builder");
  if (!process.ok()) return rpc::Process::Fail(process.status());
  auto config = builder::Config::FromEnv();
  if (!config.ok()) return rpc::Process::Fail(config.status());
  pg::Pool& pool = (*process)->pool();

  builder::BuilderServiceImpl service(pool, *config);
  builder::BuildJob build(pool, *config);
  builder::GcJob gc(pool, *config);
  jobs::Worker& worker = (*process)->AddWorker("builder");
  worker.Register("build", [&](jobs::JobContext& ctx) { return build.Run(ctx); });
  worker.Register("gc_images", [&](jobs::JobContext& ctx) { return gc.Run(ctx); });
  (*process)->AddLeader("builder.gc_images", config->gc_interval, [&] { gc.Schedule(); });
  return (*process)->Serve({{v1::BuilderService::service_full_name(), &service}});
}
