#include "services/builder/build_store.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/common/status.h"
#include "libs/jobs/queue.h"
#include "libs/pg/rows.h"
#include "libs/rpc/proto_json.h"
#include "proto/c2d/v1/jobs.pb.h"

namespace c2d::builder {
namespace {

#define C2D_BUILD_COLUMNS                                                              \
  "id, service_id, project_id, state, trigger, coalesce(requested_by, ''), repo_url, " \
  "branch, root_dir, coalesce(requested_commit, ''), commit_sha, "                     \
  "coalesce(commit_author, ''), coalesce(commit_message, ''), build_strategy, "        \
  "dockerfile_path, build_command, spec::text, skip_deploy, "                          \
  "coalesce(image_repository, ''), coalesce(image_digest, ''), "                       \
  "coalesce(image_size_bytes, 0), coalesce(failure_reason, ''), "                      \
  "coalesce(deployment_id, ''), (extract(epoch FROM created_at) * 1000000)::bigint, "  \
  "(extract(epoch FROM started_at) * 1000000)::bigint, "                               \
  "(extract(epoch FROM finished_at) * 1000000)::bigint"

constexpr pg::Statement kInsert{"builds_insert", R"sql(
INSERT INTO builds (id, service_id, project_id, trigger, requested_by, repo_url, branch,
                    root_dir, requested_commit, commit_sha, build_strategy, dockerfile_path,
                    build_command, spec, skip_deploy, image_repository, repo_url_sealed)
VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7, $8, NULLIF($9, ''), NULLIF($10, ''), $11, $12,
        $13, $14::jsonb, $15, $16, NULLIF(decode($17, 'base64'), ''))
ON CONFLICT (service_id, commit_sha)
  WHERE state IN ('queued', 'running', 'succeeded') AND reused_from IS NULL
  DO NOTHING
RETURNING id)sql"};

constexpr pg::Statement kLive{"builds_live_of_commit", "SELECT " C2D_BUILD_COLUMNS R"sql(
FROM builds WHERE service_id = $1 AND commit_sha = $2
  AND state IN ('queued', 'running', 'succeeded') AND reused_from IS NULL)sql"};

// Serialises the adoption of commits by the builds of one service.
constexpr pg::Statement kLockService{"builds_lock_service",
                                     "SELECT pg_advisory_xact_lock(hashtext('build:' || $1))"};
constexpr pg::Statement kSetCommit{"builds_set_commit", R"sql(
UPDATE builds SET commit_sha = $2, reused_from = NULLIF($3, ''), updated_at = now()
WHERE id = $1 AND state IN ('queued', 'running'))sql"};
constexpr pg::Statement kLockRequester{
    "builds_lock_requester", "SELECT pg_advisory_xact_lock(hashtext('builds-of:' || $1))"};
constexpr pg::Statement kInFlight{"builds_in_flight_of", R"sql(
SELECT count(*) FROM builds WHERE requested_by = $1 AND state IN ('queued', 'running'))sql"};

constexpr pg::Statement kSealedUrl{
    "builds_sealed_url",
    "SELECT coalesce(encode(repo_url_sealed, 'base64'), '') FROM builds WHERE id = $1"};
constexpr pg::Statement kGet{"builds_get",
                             "SELECT " C2D_BUILD_COLUMNS " FROM builds WHERE id = $1"};

constexpr pg::Statement kList{"builds_list", "SELECT " C2D_BUILD_COLUMNS R"sql(
FROM builds WHERE service_id = $1 AND ($2 = '' OR id < $2)
ORDER BY id DESC LIMIT $3)sql"};

constexpr pg::Statement kRunning{"builds_running", R"sql(
UPDATE builds SET state = 'running', started_at = coalesce(started_at, now()), updated_at = now()
WHERE id = $1 AND state IN ('queued', 'running') RETURNING id)sql"};

constexpr pg::Statement kCommit{"builds_commit", R"sql(
UPDATE builds SET commit_author = $2, commit_message = left($3, 1024), updated_at = now()
WHERE id = $1)sql"};

constexpr pg::Statement kSucceeded{"builds_succeeded", R"sql(
UPDATE builds SET state = 'succeeded', image_repository = $2, image_digest = $3,
                  image_size_bytes = $4, finished_at = now(), updated_at = now()
WHERE id = $1 AND state IN ('queued', 'running') RETURNING id)sql"};

constexpr pg::Statement kFailed{"builds_failed", R"sql(
UPDATE builds SET state = 'failed', failure_reason = $2, finished_at = now(), updated_at = now()
WHERE id = $1 AND state IN ('queued', 'running') RETURNING id)sql"};

constexpr pg::Statement kDeploymentId{"builds_deployment_id", R"sql(
UPDATE builds SET deployment_id = $2, updated_at = now() WHERE id = $1)sql"};

constexpr pg::Statement kCancelled{"builds_cancelled", R"sql(
UPDATE builds SET state = 'cancelled', failure_reason = $2, finished_at = now(),
                  updated_at = now()
WHERE id = $1 AND state IN ('queued', 'running') RETURNING id)sql"};

constexpr pg::Statement kCancelJob{"builds_cancel_job", R"sql(
UPDATE jobs SET state = 'cancelled', lease_until = NULL, locked_by = NULL,
                finished_at = now(), updated_at = now()
WHERE queue = 'builder' AND unique_key = $1 AND state IN ('available', 'running'))sql"};

constexpr pg::Statement kNotify{"builds_notify", "SELECT pg_notify('c2d_build_logs', $1)"};

constexpr pg::Statement kLastSeq{
    "build_logs_last_seq", "SELECT coalesce(max(seq), 0) FROM build_logs WHERE build_id = $1"};

constexpr pg::Statement kAppend{"build_logs_append", R"sql(
INSERT INTO build_logs (build_id, seq, stream, text)
SELECT $1, $2 + n, s, t
FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS l(s, t, n))sql"};

constexpr pg::Statement kRead{"build_logs_read", R"sql(
SELECT seq, stream, text, (extract(epoch FROM at) * 1000000)::bigint
FROM build_logs WHERE build_id = $1 AND seq > $2 ORDER BY seq LIMIT $3)sql"};

constexpr pg::Statement kServicesWithImages{"builds_services_with_images", R"sql(
SELECT DISTINCT service_id FROM builds WHERE state = 'succeeded')sql"};

constexpr pg::Statement kServiceImages{"builds_service_images", R"sql(
SELECT image_repository, image_digest FROM builds
WHERE service_id = $1 AND state = 'succeeded' ORDER BY finished_at DESC, id DESC)sql"};

constexpr pg::Statement kImagesInUse{"builds_images_in_use", R"sql(
SELECT DISTINCT image_digest FROM deployments
WHERE service_id = $1 AND state IN ('pending', 'deploying', 'live'))sql"};

v1::BuildState ParseState(const std::string& s) {
  v1::BuildState out = v1::BUILD_STATE_UNSPECIFIED;
  std::string upper = "BUILD_STATE_" + s;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  v1::BuildState_Parse(upper, &out);
  return out;
}

v1::Build RowToBuild(const pqxx::row& r) {
  v1::Build b;
  b.set_id(r[0].as<std::string>());
  b.set_service_id(r[1].as<std::string>());
  b.set_project_id(r[2].as<std::string>());
  b.set_state(ParseState(r[3].as<std::string>()));
  b.set_trigger(r[4].as<std::string>() == "webhook" ? v1::BUILD_TRIGGER_WEBHOOK
                                                    : v1::BUILD_TRIGGER_API);
  b.set_requested_by(r[5].as<std::string>());
  b.mutable_source()->set_repo_url(r[6].as<std::string>());
  b.mutable_source()->set_branch(r[7].as<std::string>());
  b.mutable_source()->set_root_dir(r[8].as<std::string>());
  b.mutable_source()->set_commit(r[9].as<std::string>());
  b.set_commit_sha(r[10].is_null() ? "" : r[10].as<std::string>());
  b.set_commit_author(r[11].as<std::string>());
  b.set_commit_message(r[12].as<std::string>());
  b.mutable_settings()->set_strategy(r[13].as<std::string>() == "dockerfile"
                                         ? v1::BUILD_STRATEGY_DOCKERFILE
                                         : v1::BUILD_STRATEGY_AUTO);
  b.mutable_settings()->set_dockerfile_path(r[14].as<std::string>());
  b.mutable_settings()->set_build_command(r[15].as<std::string>());
  (void)rpc::FromJson(r[16].as<std::string>(), b.mutable_spec());  // validated when written
  b.set_skip_deploy(r[17].as<bool>());
  b.set_image_repository(r[18].as<std::string>());
  b.set_image_digest(r[19].as<std::string>());
  b.set_image_size_bytes(r[20].as<int64_t>());
  b.set_failure_reason(r[21].as<std::string>());
  b.set_deployment_id(r[22].as<std::string>());
  pg::SetTime(r[23], b.mutable_created_at());
  pg::SetTime(r[24], b.mutable_started_at());
  pg::SetTime(r[25], b.mutable_finished_at());
  return b;
}

std::string UniqueKey(const std::string& service_id, const std::string& commit) {
  return absl::StrCat("build:", service_id, ":", commit);
}

const char* StrategyName(const v1::BuildSettings& s) {
  return s.strategy() == v1::BUILD_STRATEGY_DOCKERFILE ? "dockerfile" : "auto";
}

std::string DockerfilePath(const v1::BuildSettings& s) {
  return s.dockerfile_path().empty() ? "Dockerfile" : s.dockerfile_path();
}

const char* TriggerName(const v1::StartBuildRequest& r) {
  return r.trigger() == v1::BUILD_TRIGGER_WEBHOOK ? "webhook" : "api";
}

}  // namespace

absl::StatusOr<v1::StartBuildResponse> InsertBuild(pg::Tx& tx, const NewBuild& build) {
  const v1::StartBuildRequest& req = build.request;
  auto spec_json_or = rpc::ToJson(req.spec());
  if (!spec_json_or.ok()) return spec_json_or.status();
  const std::string& spec_json = *spec_json_or;
  pqxx::result r = tx.Exec(
      kInsert, build.id, req.service_id(), req.spec().project_id(), TriggerName(req),
      req.requested_by(), req.source().repo_url(), req.source().branch(), req.source().root_dir(),
      req.source().commit(), build.commit_sha, StrategyName(req.settings()),
      DockerfilePath(req.settings()), req.settings().build_command(), spec_json, req.skip_deploy(),
      build.image_repository, absl::Base64Escape(build.repo_url_sealed));
  v1::StartBuildResponse response;
  if (r.empty()) {
    pqxx::result live = tx.Exec(kLive, req.service_id(), build.commit_sha);
    if (live.empty())
      return absl::AbortedError("a concurrent build of this commit just ended; retry");
    *response.mutable_build() = RowToBuild(live[0]);
    response.set_created(false);
    return response;
  }
  v1::BuildJob payload;
  payload.set_build_id(build.id);
  auto payload_json = rpc::ToJson(payload);
  if (!payload_json.ok()) return payload_json.status();
  // A build of the branch head learns its commit in the job.
  auto job = jobs::Enqueue(
      tx, {.queue = "builder",
           .kind = "build",
           .payload = *payload_json,
           .max_attempts = 3,
           .unique_key = UniqueKey(req.service_id(),
                                   build.commit_sha.empty() ? build.id : build.commit_sha)});
  if (!job.ok()) return job.status();
  auto inserted = GetBuild(tx, build.id);
  if (!inserted.ok()) return inserted.status();
  *response.mutable_build() = std::move(*inserted);
  response.set_created(true);
  return response;
}

absl::StatusOr<Adopted> AdoptCommit(pg::Tx& tx, const v1::Build& build, const std::string& commit) {
  tx.Exec(kLockService, build.service_id());
  Adopted out;
  for (const auto& row : tx.Exec(kLive, build.service_id(), commit)) {
    v1::Build other = RowToBuild(row);
    if (other.id() != build.id()) out.earlier = std::move(other);
  }
  tx.Exec(kSetCommit, build.id(), commit, out.earlier ? out.earlier->id() : "");
  return out;
}

absl::StatusOr<std::string> SealedRepoUrl(pg::Tx& tx, const std::string& build_id) {
  pqxx::result r = tx.Exec(kSealedUrl, build_id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("build ", build_id, " does not exist"));
  std::string b64 = r[0][0].as<std::string>(), out;
  b64.erase(std::remove(b64.begin(), b64.end(), '\n'), b64.end());  // SQL breaks its lines
  if (!absl::Base64Unescape(b64, &out)) return absl::DataLossError("bad sealed URL encoding");
  return out;
}

absl::StatusOr<int64_t> BuildsInFlight(pg::Tx& tx, const std::string& requested_by) {
  tx.Exec(kLockRequester, requested_by);  // a concurrent StartBuild counts after this one
  return tx.Exec(kInFlight, requested_by)[0][0].as<int64_t>();
}

absl::StatusOr<v1::Build> GetBuild(pg::Tx& tx, const std::string& id) {
  pqxx::result r = tx.Exec(kGet, id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("build ", id, " does not exist"));
  return RowToBuild(r[0]);
}

absl::StatusOr<v1::ListBuildsResponse> ListBuilds(pg::Tx& tx, const std::string& service_id,
                                                  int page_size, const std::string& page_token) {
  v1::ListBuildsResponse out;
  out.set_next_page_token(
      pg::FillPage(tx.Exec(kList, service_id, page_token, page_size + 1), page_size,
                   [&](const pqxx::row& r) { return (*out.add_builds() = RowToBuild(r)).id(); }));
  return out;
}

absl::StatusOr<bool> MarkRunning(pg::Tx& tx, const std::string& id) {
  bool changed = !tx.Exec(kRunning, id).empty();
  tx.Exec(kNotify, id);
  return changed;
}

absl::Status RecordCommit(pg::Tx& tx, const std::string& id, const std::string& author,
                          const std::string& message) {
  tx.Exec(kCommit, id, author, message);
  return absl::OkStatus();
}

absl::StatusOr<bool> MarkSucceeded(pg::Tx& tx, const std::string& id, const std::string& repository,
                                   const std::string& digest, int64_t size_bytes) {
  bool changed = !tx.Exec(kSucceeded, id, repository, digest, size_bytes).empty();
  tx.Exec(kNotify, id);
  return changed;
}

absl::StatusOr<bool> MarkFailed(pg::Tx& tx, const std::string& id, const std::string& reason) {
  bool changed = !tx.Exec(kFailed, id, reason).empty();
  tx.Exec(kNotify, id);
  return changed;
}

absl::StatusOr<bool> MarkCancelled(pg::Tx& tx, const std::string& id, const std::string& reason) {
  bool changed = !tx.Exec(kCancelled, id, reason).empty();
  tx.Exec(kNotify, id);
  return changed;
}

absl::Status SetDeploymentId(pg::Tx& tx, const std::string& id, const std::string& deployment_id) {
  tx.Exec(kDeploymentId, id, deployment_id);
  tx.Exec(kNotify, id);
  return absl::OkStatus();
}

absl::Status CancelBuildJob(pg::Tx& tx, const v1::Build& build) {
  // As InsertBuild keyed it: by the commit asked for, or by the build.
  const std::string& commit = build.source().commit();
  tx.Exec(kCancelJob, UniqueKey(build.service_id(), commit.empty() ? build.id() : commit));
  return absl::OkStatus();
}

absl::StatusOr<int64_t> LastLogSeq(pg::Tx& tx, const std::string& build_id) {
  return tx.Exec(kLastSeq, build_id)[0][0].as<int64_t>();
}

absl::Status AppendLogs(pg::Tx& tx, const std::string& build_id, int64_t first_seq,
                        const std::vector<LogRow>& rows) {
  if (rows.empty()) return absl::OkStatus();
  std::vector<std::string> streams, texts;
  for (const LogRow& row : rows) {
    streams.push_back(row.stream);
    std::string text = row.text.substr(0, 8192);
    // Keep the text valid for PostgreSQL: NUL bytes cannot be stored.
    text.erase(std::remove(text.begin(), text.end(), '\0'), text.end());
    texts.push_back(std::move(text));
  }
  // seq of the n-th row (1-based) is first_seq - 1 + n.
  tx.Exec(kAppend, build_id, first_seq - 1, pg::TextArray(streams), pg::TextArray(texts));
  tx.Exec(kNotify, build_id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<LogRow>> ReadLogs(pg::Tx& tx, const std::string& build_id,
                                             int64_t after_seq, int limit) {
  std::vector<LogRow> out;
  for (const auto& row : tx.Exec(kRead, build_id, after_seq, limit)) {
    out.push_back(LogRow{row[0].as<int64_t>(), row[1].as<std::string>(), row[2].as<std::string>(),
                         row[3].as<int64_t>()});
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ServicesWithImages(pg::Tx& tx) {
  std::vector<std::string> out;
  for (const auto& row : tx.Exec(kServicesWithImages)) out.push_back(row[0].as<std::string>());
  return out;
}

absl::StatusOr<ServiceImages> ImagesOf(pg::Tx& tx, const std::string& service_id) {
  ServiceImages out;
  for (const auto& row : tx.Exec(kServiceImages, service_id)) {
    out.repository = row[0].as<std::string>();
    out.newest_first.push_back(row[1].as<std::string>());
  }
  for (const auto& row : tx.Exec(kImagesInUse, service_id)) {
    out.in_use.push_back(row[0].as<std::string>());
  }
  return out;
}

}  // namespace c2d::builder
