#include "libs/jobs/queue.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace c2d::jobs {
namespace {

// Columns of a Job, in the order RowToJob reads them.
#define C2D_JOB_COLUMNS                                                           \
  "id, queue, kind, payload::text, state, priority, attempts, max_attempts, "     \
  "coalesce(unique_key, ''), coalesce(last_error, ''), coalesce(locked_by, ''), " \
  "(extract(epoch FROM run_at) * 1000000)::bigint"

constexpr pg::Statement kInsert{"jobs_insert", R"sql(
INSERT INTO jobs (queue, kind, payload, priority, run_at, max_attempts, unique_key)
VALUES ($1, $2, $3::jsonb, $4,
        coalesce(to_timestamp($5::double precision / 1000000), now()), $6, NULLIF($7, ''))
ON CONFLICT (queue, unique_key)
  WHERE unique_key IS NOT NULL AND state IN ('available', 'running')
  DO NOTHING
RETURNING id)sql"};

constexpr pg::Statement kFindLive{"jobs_find_live", R"sql(
SELECT id FROM jobs
WHERE queue = $1 AND unique_key = $2 AND state IN ('available', 'running'))sql"};

constexpr pg::Statement kNotify{"jobs_notify", "SELECT pg_notify($1, '')"};

constexpr pg::Statement kCancel{"jobs_cancel", R"sql(
UPDATE jobs
SET state = 'cancelled', lease_until = NULL, locked_by = NULL,
    finished_at = now(), updated_at = now()
WHERE id = $1 AND state IN ('available', 'running')
RETURNING id)sql"};

constexpr pg::Statement kGet{"jobs_get", "SELECT " C2D_JOB_COLUMNS " FROM jobs WHERE id = $1"};

// The claim (DESIGN §3). SKIP LOCKED lets concurrent workers take disjoint
// batches without waiting on each other; the partial index jobs_claim_idx
// serves the inner SELECT.
constexpr pg::Statement kClaim{"jobs_claim", R"sql(
WITH claimed AS (
  UPDATE jobs
  SET state = 'running', attempts = attempts + 1, locked_by = $3,
      lease_until = now() + $5 * interval '1 millisecond',
      started_at = now(), updated_at = now()
  WHERE id IN (
    SELECT id FROM jobs
    WHERE queue = $1 AND state = 'available' AND run_at <= now()
      AND kind = ANY($2::text[])
    ORDER BY priority, run_at, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED)
  RETURNING )sql" C2D_JOB_COLUMNS R"sql()
SELECT * FROM claimed ORDER BY priority, 12, id)sql"};

constexpr pg::Statement kNextRunAt{"jobs_next_run_at", R"sql(
SELECT (extract(epoch FROM min(run_at)) * 1000000)::bigint FROM jobs
WHERE queue = $1 AND state = 'available' AND kind = ANY($2::text[]))sql"};

constexpr pg::Statement kHeartbeat{"jobs_heartbeat", R"sql(
UPDATE jobs
SET lease_until = now() + $4 * interval '1 millisecond', updated_at = now()
WHERE (id, attempts) IN (SELECT * FROM unnest($2::bigint[], $3::integer[]))
  AND locked_by = $1 AND state = 'running'
RETURNING id)sql"};

// Completion statements match the claim by worker and attempt, so a stale
// worker whose job was rescued and re-claimed can never overwrite the new run.
constexpr pg::Statement kSucceeded{"jobs_succeeded", R"sql(
UPDATE jobs
SET state = 'succeeded', lease_until = NULL, locked_by = NULL,
    finished_at = now(), updated_at = now()
WHERE id = $1 AND attempts = $2 AND locked_by = $3 AND state = 'running'
RETURNING id)sql"};

constexpr pg::Statement kFailed{"jobs_failed", R"sql(
UPDATE jobs
SET state = CASE WHEN $5 OR attempts >= max_attempts THEN 'failed' ELSE 'available' END,
    run_at = CASE WHEN $5 OR attempts >= max_attempts THEN run_at
                  ELSE now() + $6 * interval '1 millisecond' END,
    finished_at = CASE WHEN $5 OR attempts >= max_attempts THEN now() END,
    last_error = $4, lease_until = NULL, locked_by = NULL, updated_at = now()
WHERE id = $1 AND attempts = $2 AND locked_by = $3 AND state = 'running'
RETURNING state)sql"};

constexpr pg::Statement kRelease{"jobs_release", R"sql(
UPDATE jobs
SET state = 'available', attempts = attempts - 1, run_at = now(),
    last_error = $4, lease_until = NULL, locked_by = NULL, updated_at = now()
WHERE id = $1 AND attempts = $2 AND locked_by = $3 AND state = 'running'
RETURNING queue)sql"};

constexpr pg::Statement kRescue{"jobs_rescue", R"sql(
UPDATE jobs
SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'available' END,
    finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
    run_at = now(),
    last_error = 'lease expired: worker ' || locked_by || ' stopped heartbeating',
    lease_until = NULL, locked_by = NULL, updated_at = now()
WHERE id IN (
  SELECT id FROM jobs
  WHERE state = 'running' AND lease_until < now()
  ORDER BY lease_until
  LIMIT $1
  FOR UPDATE SKIP LOCKED)
RETURNING id, queue, state)sql"};

constexpr pg::Statement kDepths{"jobs_depths", R"sql(
SELECT queue, state, count(*) FROM jobs
WHERE state IN ('available', 'running')
GROUP BY queue, state)sql"};

bool ValidName(absl::string_view s) {
  if (s.empty() || s.size() > 40 || s[0] < 'a' || s[0] > 'z') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// A PostgreSQL array literal of plain names (validated, so no quoting needed).
std::string TextArray(const std::vector<std::string>& items) {
  return absl::StrCat("{", absl::StrJoin(items, ","), "}");
}

Job RowToJob(const pqxx::row& r) {
  Job j;
  j.id = r[0].as<int64_t>();
  j.queue = r[1].as<std::string>();
  j.kind = r[2].as<std::string>();
  j.payload = r[3].as<std::string>();
  j.state = ParseState(r[4].as<std::string>()).value_or(State::kAvailable);
  j.priority = r[5].as<int>();
  j.attempts = r[6].as<int>();
  j.max_attempts = r[7].as<int>();
  j.unique_key = r[8].as<std::string>();
  j.last_error = r[9].as<std::string>();
  j.locked_by = r[10].as<std::string>();
  j.run_at = absl::FromUnixMicros(r[11].as<int64_t>());
  return j;
}

}  // namespace

std::string Channel(absl::string_view queue) { return absl::StrCat("c2d_jobs_", queue); }

absl::StatusOr<Enqueued> Enqueue(pg::Tx& tx, const NewJob& job) {
  if (!ValidName(job.queue)) {
    return absl::InvalidArgumentError(absl::StrCat("job queue \"", job.queue, "\" is not valid"));
  }
  if (!ValidName(job.kind)) {
    return absl::InvalidArgumentError(absl::StrCat("job kind \"", job.kind, "\" is not valid"));
  }
  if (!nlohmann::json::accept(job.payload) || !nlohmann::json::parse(job.payload).is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("payload of a ", job.kind, " job is not a JSON object"));
  }
  if (job.max_attempts < 1) {
    return absl::InvalidArgumentError("max_attempts must be at least 1");
  }
  std::optional<int64_t> run_at_us;
  if (job.run_at) run_at_us = absl::ToUnixMicros(*job.run_at);
  // Between a conflicting insert and the look-up the live job may end; then
  // the next insert succeeds. Two rounds settle every interleaving but a
  // pathological one, reported as Aborted so the caller's transaction retries.
  for (int round = 0; round < 3; ++round) {
    pqxx::result r = run_at_us ? tx.Exec(kInsert, job.queue, job.kind, job.payload, job.priority,
                                         *run_at_us, job.max_attempts, job.unique_key)
                               : tx.Exec(kInsert, job.queue, job.kind, job.payload, job.priority,
                                         nullptr, job.max_attempts, job.unique_key);
    if (!r.empty()) {
      tx.Exec(kNotify, Channel(job.queue));
      return Enqueued{r[0][0].as<int64_t>(), true};
    }
    pqxx::result live = tx.Exec(kFindLive, job.queue, job.unique_key);
    if (!live.empty()) return Enqueued{live[0][0].as<int64_t>(), false};
  }
  return absl::AbortedError(
      absl::StrCat("job with unique key ", job.unique_key, " kept changing; retry"));
}

absl::StatusOr<bool> Cancel(pg::Tx& tx, int64_t id) { return !tx.Exec(kCancel, id).empty(); }

absl::StatusOr<Job> Get(pg::Tx& tx, int64_t id) {
  pqxx::result r = tx.Exec(kGet, id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("job ", id, " does not exist"));
  return RowToJob(r[0]);
}

absl::StatusOr<std::vector<Job>> Claim(pg::Tx& tx, absl::string_view queue,
                                       const std::vector<std::string>& kinds,
                                       absl::string_view worker_id, int limit,
                                       std::chrono::milliseconds lease) {
  std::vector<Job> out;
  for (const auto& row :
       tx.Exec(kClaim, std::string(queue), TextArray(kinds), std::string(worker_id), limit,
               static_cast<int64_t>(lease.count()))) {
    out.push_back(RowToJob(row));
  }
  return out;
}

absl::StatusOr<std::optional<absl::Time>> NextRunAt(pg::Tx& tx, absl::string_view queue,
                                                    const std::vector<std::string>& kinds) {
  pqxx::result r = tx.Exec(kNextRunAt, std::string(queue), TextArray(kinds));
  if (r.empty() || r[0][0].is_null()) return std::optional<absl::Time>();
  return std::optional<absl::Time>(absl::FromUnixMicros(r[0][0].as<int64_t>()));
}

absl::StatusOr<std::vector<int64_t>> Heartbeat(pg::Tx& tx, absl::string_view worker_id,
                                               const std::vector<ClaimRef>& claims,
                                               std::chrono::milliseconds lease) {
  std::vector<std::string> ids, attempts;
  for (const ClaimRef& c : claims) {
    ids.push_back(std::to_string(c.id));
    attempts.push_back(std::to_string(c.attempt));
  }
  std::vector<int64_t> held;
  for (const auto& row : tx.Exec(kHeartbeat, std::string(worker_id), TextArray(ids),
                                 TextArray(attempts), static_cast<int64_t>(lease.count()))) {
    held.push_back(row[0].as<int64_t>());
  }
  return held;
}

absl::StatusOr<bool> MarkSucceeded(pg::Tx& tx, absl::string_view worker_id, ClaimRef claim) {
  return !tx.Exec(kSucceeded, claim.id, claim.attempt, std::string(worker_id)).empty();
}

absl::StatusOr<bool> MarkFailed(pg::Tx& tx, absl::string_view worker_id, ClaimRef claim,
                                absl::string_view error, bool permanent,
                                std::chrono::milliseconds retry_delay, State* final_state) {
  pqxx::result r =
      tx.Exec(kFailed, claim.id, claim.attempt, std::string(worker_id), std::string(error),
              permanent, static_cast<int64_t>(retry_delay.count()));
  if (r.empty()) return false;
  if (final_state != nullptr) {
    *final_state = ParseState(r[0][0].as<std::string>()).value_or(State::kFailed);
  }
  return true;
}

absl::StatusOr<bool> Release(pg::Tx& tx, absl::string_view worker_id, ClaimRef claim,
                             absl::string_view reason) {
  pqxx::result r =
      tx.Exec(kRelease, claim.id, claim.attempt, std::string(worker_id), std::string(reason));
  if (r.empty()) return false;
  tx.Exec(kNotify, Channel(r[0][0].as<std::string>()));
  return true;
}

absl::StatusOr<std::vector<Rescued>> RescueExpired(pg::Tx& tx, int limit) {
  std::vector<Rescued> out;
  std::set<std::string> queues;
  for (const auto& row : tx.Exec(kRescue, limit)) {
    Rescued r{row[0].as<int64_t>(), row[1].as<std::string>(),
              ParseState(row[2].as<std::string>()).value_or(State::kAvailable)};
    if (r.state == State::kAvailable) queues.insert(r.queue);
    out.push_back(std::move(r));
  }
  for (const auto& q : queues) tx.Exec(kNotify, Channel(q));
  return out;
}

absl::StatusOr<std::vector<Depth>> QueueDepths(pg::Tx& tx) {
  std::vector<Depth> out;
  for (const auto& row : tx.Exec(kDepths)) {
    out.push_back(Depth{row[0].as<std::string>(),
                        ParseState(row[1].as<std::string>()).value_or(State::kAvailable),
                        row[2].as<int64_t>()});
  }
  return out;
}

}  // namespace c2d::jobs
