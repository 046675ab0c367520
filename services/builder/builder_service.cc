#include "services/builder/builder_service.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/pg/errors.h"
#include "libs/rpc/repo_url.h"
#include "libs/rpc/server.h"
#include "libs/rpc/status.h"
#include "libs/rpc/validate.h"
#include "services/builder/build_store.h"

namespace c2d::builder {
namespace {

bool IsFinal(v1::BuildState s) {
  return s == v1::BUILD_STATE_SUCCEEDED || s == v1::BUILD_STATE_FAILED ||
         s == v1::BUILD_STATE_CANCELLED;
}

}  // namespace

absl::Status ValidateStartBuild(const v1::StartBuildRequest& r,
                                const std::string& local_repo_root) {
  if (!ids::Valid(r.service_id(), "svc"))
    return rpc::InvalidField("service_id", "is not a service id");
  const v1::ServiceSpec& spec = r.spec();
  if (spec.service_id() != r.service_id())
    return rpc::InvalidField("spec.service_id", "must equal service_id");
  if (!ids::Valid(spec.project_id(), "prj"))
    return rpc::InvalidField("spec.project_id", "is not a project id");
  if (!rpc::ValidName(spec.project_name()))
    return rpc::InvalidField("spec.project_name", rpc::kNameRule);
  if (!rpc::ValidName(spec.service_name()))
    return rpc::InvalidField("spec.service_name", rpc::kNameRule);
  if (absl::Status s = rpc::ValidateSource(r.source(), "source.", local_repo_root); !s.ok())
    return s;
  return rpc::ValidateBuildSettings(r.settings(), "settings.");
}

BuilderServiceImpl::BuilderServiceImpl(pg::Pool& pool, const Config& config)
    : pool_(pool), config_(config), listener_(pool.options().connect, kBuildLogChannel) {}

grpc::Status BuilderServiceImpl::StartBuild(grpc::ServerContext* context,
                                            const v1::StartBuildRequest* request,
                                            v1::StartBuildResponse* response) {
  log::Scope scope(nlohmann::json{{"request_id", rpc::RequestId(*context)}});
  if (auto s = ValidateStartBuild(*request, config_.local_repo_root); !s.ok())
    return rpc::ToGrpc(s);
  NewBuild build;
  build.id = ids::New("bld");
  build.request = *request;
  v1::Source* src = build.request.mutable_source();
  if (src->branch().empty()) src->set_branch("main");
  if (build.request.settings().strategy() == v1::BUILD_STRATEGY_UNSPECIFIED) {
    build.request.mutable_settings()->set_strategy(v1::BUILD_STRATEGY_AUTO);
  }
  build.image_repository = absl::StrCat(config_.RegistryHost(), "/", request->spec().project_name(),
                                        "/", request->spec().service_name());
  // Credentials in the URL are stored sealed, the URL masked.
  auto sealed = rpc::SealUrl(*config_.master_keys, src->repo_url(), BuildRepoUrlAad(build.id));
  if (!sealed.ok()) return rpc::ToGrpc(sealed.status());
  build.repo_url_sealed = std::move(*sealed);
  src->set_repo_url(rpc::RedactUrl(src->repo_url()));
  // A branch head is resolved by the build job: no call waits on git.
  build.commit_sha = src->commit();
  auto result =
      pool_.Transact("start build", [&](pg::Tx& tx) -> absl::StatusOr<v1::StartBuildResponse> {
        if (request->trigger() == v1::BUILD_TRIGGER_API && !request->requested_by().empty()) {
          auto in_flight = BuildsInFlight(tx, request->requested_by());
          if (!in_flight.ok()) return in_flight.status();
          if (*in_flight >= config_.max_builds_per_user) {
            return absl::ResourceExhaustedError(
                absl::StrCat(*in_flight, " builds of yours are queued or running; the limit is ",
                             config_.max_builds_per_user, " (retry when one has ended)"));
          }
        }
        return InsertBuild(tx, build);
      });
  if (pg::IsForeignKeyViolation(result.status())) {
    // The gateway stores services and projects before it builds.
    return rpc::ToGrpc(
        absl::NotFoundError(absl::StrCat("service ", request->service_id(), " or project ",
                                         request->spec().project_id(), " does not exist")));
  }
  if (!result.ok()) return rpc::ToGrpc(result.status());
  *response = std::move(*result);
  log::Info(response->created() ? "build queued" : "build already exists",
            {{"build_id", response->build().id()}, {"commit", response->build().commit_sha()}});
  return grpc::Status::OK;
}

grpc::Status BuilderServiceImpl::GetBuild(grpc::ServerContext*, const v1::GetBuildRequest* request,
                                          v1::Build* response) {
  if (!ids::Valid(request->id(), "bld"))
    return rpc::ToGrpc(rpc::InvalidField("id", "is not a build id"));
  auto b =
      pool_.Transact("get build", [&](pg::Tx& tx) { return builder::GetBuild(tx, request->id()); });
  if (!b.ok()) return rpc::ToGrpc(b.status());
  *response = std::move(*b);
  return grpc::Status::OK;
}

grpc::Status BuilderServiceImpl::ListBuilds(grpc::ServerContext*,
                                            const v1::ListBuildsRequest* request,
                                            v1::ListBuildsResponse* response) {
  if (!ids::Valid(request->service_id(), "svc")) {
    return rpc::ToGrpc(rpc::InvalidField("service_id", "is not a service id"));
  }
  auto size = rpc::PageSize(request->page());
  if (!size.ok()) return rpc::ToGrpc(size.status());
  const std::string& token = request->page().page_token();
  if (!token.empty() && !ids::Valid(token, "bld")) {
    return rpc::ToGrpc(rpc::InvalidField("page.page_token", "is not a token from a previous page"));
  }
  auto list = pool_.Transact("list builds", [&](pg::Tx& tx) {
    return builder::ListBuilds(tx, request->service_id(), *size, token);
  });
  if (!list.ok()) return rpc::ToGrpc(list.status());
  *response = std::move(*list);
  return grpc::Status::OK;
}

grpc::Status BuilderServiceImpl::CancelBuild(grpc::ServerContext*,
                                             const v1::CancelBuildRequest* request,
                                             v1::Build* response) {
  if (!ids::Valid(request->id(), "bld"))
    return rpc::ToGrpc(rpc::InvalidField("id", "is not a build id"));
  auto b = pool_.Transact("cancel build", [&](pg::Tx& tx) -> absl::StatusOr<v1::Build> {
    auto build = builder::GetBuild(tx, request->id());
    if (!build.ok()) return build.status();
    if (IsFinal(build->state())) {
      return absl::FailedPreconditionError(
          absl::StrCat("build ", request->id(), " has already ended (",
                       v1::BuildState_Name(build->state()).substr(12), ")"));
    }
    auto changed = MarkCancelled(tx, request->id(), "cancelled by request");
    if (!changed.ok()) return changed.status();
    // The running job hears of it at its next heartbeat and stops the build.
    if (auto s = CancelBuildJob(tx, *build); !s.ok()) return s;
    return builder::GetBuild(tx, request->id());
  });
  if (!b.ok()) return rpc::ToGrpc(b.status());
  *response = std::move(*b);
  return grpc::Status::OK;
}

grpc::Status BuilderServiceImpl::StreamBuildLogs(grpc::ServerContext* context,
                                                 const v1::StreamBuildLogsRequest* request,
                                                 grpc::ServerWriter<v1::LogLine>* writer) {
  if (!ids::Valid(request->build_id(), "bld")) {
    return rpc::ToGrpc(rpc::InvalidField("build_id", "is not a build id"));
  }
  if (request->after_seq() < 0)
    return rpc::ToGrpc(rpc::InvalidField("after_seq", "must not be negative"));
  const std::string& id = request->build_id();
  int64_t after = request->after_seq();
  while (!context->IsCancelled()) {
    const uint64_t seen = listener_.Version(id);
    // Read the state before the lines: once final, no line can follow.
    auto build = pool_.Transact("get build", [&](pg::Tx& tx) { return builder::GetBuild(tx, id); });
    if (!build.ok()) return rpc::ToGrpc(build.status());
    bool more = true;
    while (more) {
      auto rows = pool_.Transact("read build log",
                                 [&](pg::Tx& tx) { return ReadLogs(tx, id, after, 500); });
      if (!rows.ok()) return rpc::ToGrpc(rows.status());
      for (const LogRow& row : *rows) {
        v1::LogLine line;
        line.set_seq(row.seq);
        *line.mutable_time() =
            google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(row.at_micros);
        line.set_stream(row.stream == "stderr"   ? v1::LOG_STREAM_STDERR
                        : row.stream == "system" ? v1::LOG_STREAM_SYSTEM
                                                 : v1::LOG_STREAM_STDOUT);
        line.set_text(row.text);
        if (!writer->Write(line)) return grpc::Status::OK;  // the client left
        after = row.seq;
      }
      more = rows->size() == 500;
    }
    if (!request->follow() || IsFinal(build->state())) return grpc::Status::OK;
    // New lines or a state change notify; the timeout bounds a missed one.
    listener_.WaitForChange(id, seen, absl::Seconds(1));
  }
  return grpc::Status::OK;
}

}  // namespace c2d::builder
